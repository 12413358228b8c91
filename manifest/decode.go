package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// MaxManifestSize is the largest manifest mirrorlet reads.
const MaxManifestSize = 10 << 20

// Decode reads exactly one v1 Pod from YAML or JSON. Unknown and duplicate
// fields are errors (the kubelet drops them silently; a typo in a static pod
// should not run a pod that differs from what its author wrote).
func Decode(data []byte) (*corev1.Pod, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, larger than the limit of %d", len(data), MaxManifestSize)
	}
	doc, err := singleDocument(data)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	if err := checkType(js); err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	strictErrs, err := kjson.UnmarshalStrict(js, pod, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("decoding Pod: %w", err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("decoding Pod: %w", errors.Join(strictErrs...))
	}
	return pod, nil
}

// singleDocument returns the only YAML document in data, or an error if
// there is none or more than one.
func singleDocument(data []byte) ([]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML: %w", err)
		}
		if !isEmptyDocument(doc) {
			docs = append(docs, doc)
		}
	}
	switch len(docs) {
	case 0:
		return nil, errors.New("manifest is empty")
	case 1:
		return docs[0], nil
	default:
		return nil, fmt.Errorf("manifest holds %d YAML documents; a static pod manifest holds exactly one Pod", len(docs))
	}
}

func isEmptyDocument(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}

func checkType(js []byte) error {
	if !bytes.HasPrefix(bytes.TrimSpace(js), []byte("{")) {
		return errors.New("manifest is not a YAML or JSON object")
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return fmt.Errorf("reading apiVersion and kind: %w", err)
	}
	switch {
	case tm.Kind == "":
		return errors.New("kind: Required value: must be Pod")
	case tm.Kind == "PodList" || tm.Kind == "List":
		return fmt.Errorf("kind: Invalid value: %q: a manifest file holds one Pod, not a list", tm.Kind)
	case tm.Kind != "Pod":
		return fmt.Errorf("kind: Invalid value: %q: must be Pod", tm.Kind)
	case tm.APIVersion == "":
		return errors.New("apiVersion: Required value: must be v1")
	case tm.APIVersion != "v1":
		return fmt.Errorf("apiVersion: Invalid value: %q: must be v1", tm.APIVersion)
	}
	return nil
}
