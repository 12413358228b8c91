package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// validate runs `mirrorlet validate args...` and returns its output and
// whether it found problems.
func validate(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"validate", "--node-name", "node1"}, args...))
	err := cmd.Execute()
	var ve *validationError
	if err != nil && !errors.As(err, &ve) {
		t.Fatalf("validate %v: %v", args, err)
	}
	return out.String(), err != nil
}

func TestValidateBadCorpus(t *testing.T) {
	files, err := filepath.Glob("../../test/testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			out, bad := validate(t, file)
			if !bad {
				t.Fatalf("accepted:\n%s", out)
			}
			if !strings.Contains(out, file+": ") || !strings.Contains(out, strings.TrimSpace(string(want))) {
				t.Errorf("output %q does not name the file and contain %q", out, want)
			}
		})
	}
}

// TestValidateGeneratedBadInput scans a directory holding one bad entry,
// as mirrorlet's directory source does.
func TestValidateGeneratedBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(path string) error
		want  string
	}{
		{"junk.yaml", func(p string) error { return os.WriteFile(p, []byte{0, 1, 2, 0xff, 0xfe}, 0o644) }, "YAML"},
		{"huge.yaml", func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer func() { _ = f.Close() }()
			return f.Truncate(100 << 20)
		}, "larger than the limit"},
		{"loop.yaml", func(p string) error { return os.Symlink(p, p) }, "too many levels of symbolic links"},
		{"dir.yaml", func(p string) error { return os.Mkdir(p, 0o755) }, "is a directory"},
		{"fifo.yaml", func(p string) error { return syscall.Mkfifo(p, 0o644) }, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.name)
			if err := tc.setup(path); err != nil {
				t.Fatal(err)
			}
			out, bad := validate(t, dir)
			if !bad || !strings.Contains(out, path+": ") || !strings.Contains(out, tc.want) {
				t.Errorf("validate %s: problems=%v output %q, want %q", tc.name, bad, out, tc.want)
			}
		})
	}
	// Mode 000: unreadable for anyone but root, who reads it fine.
	unreadable := filepath.Join(t.TempDir(), "unreadable.yaml")
	if err := os.WriteFile(unreadable, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: u}\nspec: {containers: [{name: c, image: i}]}\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	out, bad := validate(t, unreadable)
	if os.Geteuid() == 0 && bad || os.Geteuid() != 0 && (!bad || !strings.Contains(out, "permission denied")) {
		t.Errorf("mode 000 file (euid %d): problems=%v output %q", os.Geteuid(), bad, out)
	}
}

func TestValidateRealWorldCorpus(t *testing.T) {
	out, bad := validate(t, "../../test/testdata/good")
	if bad || !strings.Contains(out, "OK: 6 static pods") {
		t.Fatalf("real-world manifests refused:\n%s", out)
	}
}

func TestValidateAcrossManifests(t *testing.T) {
	dir := t.TempDir()
	pod := func(name string, port int) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n  hostNetwork: true\n" +
			"  containers: [{name: c, image: i, ports: [{containerPort: " + strconv.Itoa(port) + "}]}]\n"
	}
	files := map[string]string{"a.yaml": pod("web", 80), "b.yaml": pod("web", 81), "c.yaml": pod("other", 80)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, bad := validate(t, dir)
	if !bad {
		t.Fatalf("accepted:\n%s", out)
	}
	for _, want := range []string{
		filepath.Join(dir, "b.yaml") + ": pod default/web-node1 is already defined by " + filepath.Join(dir, "a.yaml"),
		filepath.Join(dir, "c.yaml") + ": host port 80/TCP is already used by pod default/web-node1 from " + filepath.Join(dir, "a.yaml"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValidateURL(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "t" {
			http.Error(w, "no token", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: u}\nspec: {containers: [{name: c, image: i, imagee: x}]}\n"))
	}))
	defer ts.Close()
	out, bad := validate(t, ts.URL)
	if !bad || !strings.Contains(out, "403") {
		t.Errorf("without the header: %q", out)
	}
	out, bad = validate(t, "--manifest-url-header", "X-Token:t", ts.URL)
	if !bad || !strings.Contains(out, ts.URL+`: decoding Pod: unknown field "spec.containers[0].imagee"`) {
		t.Errorf("with the header: %q", out)
	}
}

// TestValidateWarnsAboutPermissions: what mirrorlet refuses at start is a
// warning in validate (a checkout's modes are not the node's), not a
// problem.
func TestValidateWarnsAboutPermissions(t *testing.T) {
	dir := t.TempDir()
	writeMode(t, filepath.Join(dir, "web.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: nginx\n", 0o664)
	out, bad := validate(t, dir, "http://0.0.0.0:1/pods")
	if !strings.Contains(out, "warning: mirrorlet would refuse to start: manifest "+filepath.Join(dir, "web.yaml")+": unsafe permissions (mode -rw-rw-r--") ||
		!strings.Contains(out, `warning: manifest URL "http://0.0.0.0:1/pods": plain http://`) {
		t.Errorf("no permission or URL warning in:\n%s", out)
	}
	_ = bad // the URL cannot be fetched: a problem of its own
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeMode(t, kubeconfig, tokenKubeconfig, 0o644)
	out, bad = validate(t, "--kubeconfig", kubeconfig, dir)
	if bad || !strings.Contains(out, "OK: 1 static pods") {
		t.Errorf("an unsafe mode failed validation (it must only warn):\n%s", out)
	}
	if !strings.Contains(out, "warning: mirrorlet would refuse to start: kubeconfig "+kubeconfig+": unsafe permissions (mode -rw-r--r--") {
		t.Errorf("no kubeconfig warning in:\n%s", out)
	}
}
