package nodetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RepoPath returns rel (slash-separated) in the repository, found by
// walking up from the working directory to the go.mod of the module.
func RepoPath(rel string) string {
	dir, _ := os.Getwd()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/mirrorlet/mirrorlet\n")) {
			return filepath.Join(d, filepath.FromSlash(rel))
		}
	}
	return filepath.Join(dir, "..", "..", filepath.FromSlash(rel))
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

// Eventually polls cond every 100 ms until it holds, failing the test when
// timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
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

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}
