package nodetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RepoPath returns rel (slash-separated) in this checkout, found from this
// file's place in it (test/nodetest), whatever the working directory.
func RepoPath(rel string) string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", filepath.FromSlash(rel))
}

// BuildMirrorlet builds the mirrorlet binary into dir and returns its path.
func BuildMirrorlet(dir string) (string, error) {
	bin := filepath.Join(dir, "mirrorlet")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/mirrorlet/mirrorlet/cmd/mirrorlet")
	cmd.Dir = RepoPath("")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building mirrorlet: %w\n%s", err, out)
	}
	return bin, nil
}

// ApplyFiles creates every object of the YAML files (repository paths)
// through c; objects that exist already are left as they are.
func ApplyFiles(ctx context.Context, c client.Client, files ...string) error {
	for _, f := range files {
		data, err := os.ReadFile(RepoPath(f))
		if err != nil {
			return fmt.Errorf("reading %s: %w", f, err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			err := dec.Decode(&u.Object)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("decoding %s: %w", f, err)
			}
			if len(u.Object) == 0 {
				continue
			}
			if err := c.Create(ctx, u); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating %s %s from %s: %w", u.GetKind(), u.GetName(), f, err)
			}
		}
	}
	return nil
}

// Lines returns the lines of text containing sub.
func Lines(text, sub string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}
