package manifest

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Error is a problem with one manifest. Its message names the manifest and,
// where it can, the field: "FILE: FIELD: MESSAGE".
type Error struct {
	// Origin is the file path or URL.
	Origin string
	// Fields holds validation problems; empty when Err says what went wrong.
	Fields field.ErrorList
	// Err is a problem that is not tied to one field (reading, decoding).
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Origin, e.Err)
	}
	msgs := make([]string, 0, len(e.Fields))
	for _, fe := range e.Fields {
		msgs = append(msgs, fmt.Sprintf("%s: %v", e.Origin, fe))
	}
	return strings.Join(msgs, "\n")
}

func (e *Error) Unwrap() error { return e.Err }

// Load decodes, defaults, identifies, hashes and validates one manifest. On
// failure the error is an *Error.
func Load(data []byte, id Identity) (*StaticPod, error) {
	if id.Seen.IsZero() {
		id.Seen = time.Now()
	}
	pod, err := Decode(data)
	if err != nil {
		return nil, &Error{Origin: id.Origin, Err: err}
	}
	sp, err := LoadPod(pod, id)
	if err != nil {
		return nil, err
	}
	sp.Content = data
	return sp, nil
}

func fieldRequired(path ...string) field.ErrorList {
	return field.ErrorList{field.Required(field.NewPath(path[0], path[1:]...), "")}
}
