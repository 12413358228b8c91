package filesafety

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckManifest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		owner int // -1: the test's own user
		want  string
	}{
		{name: "private", mode: 0o600, owner: -1},
		{name: "world-readable", mode: 0o644, owner: -1},
		{name: "group-writable", mode: 0o664, owner: -1, want: "writable by its group"},
		{name: "world-writable", mode: 0o646, owner: -1, want: "writable by others"},
		{name: "other user", mode: 0o644, owner: 4242, want: "owned by uid 4242"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pod.yaml")
			writeFile(t, path, "kind: Pod\n", tc.mode)
			if tc.owner >= 0 {
				chown(t, path, tc.owner)
			}
			err := CheckManifest(path)
			checkErr(t, err, tc.want, path)
		})
	}
}

func TestCheckManifestDir(t *testing.T) {
	dir := t.TempDir()
	if err := CheckManifestDir(dir); err != nil {
		t.Fatalf("private directory refused: %v", err)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	err := CheckManifestDir(dir)
	checkErr(t, err, "writable by its group", dir)
	if !strings.Contains(err.Error(), "drwxrwxr-x") || !strings.Contains(err.Error(), "runs containers as root") {
		t.Errorf("error does not show the mode and why: %v", err)
	}
}

func TestCheckKubeconfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		user     string
		mode     os.FileMode
		keyMode  os.FileMode
		wantPath string // "kubeconfig" or "key"; empty: accepted
	}{
		{name: "token 0600", user: "token: abc", mode: 0o600},
		{name: "token world-readable", user: "token: abc", mode: 0o644, wantPath: "kubeconfig"},
		{name: "token group-readable", user: "token: abc", mode: 0o640, wantPath: "kubeconfig"},
		{name: "key data world-readable", user: "client-key-data: YWJj", mode: 0o604, wantPath: "kubeconfig"},
		{name: "no credential, readable", user: "client-certificate: cert.pem", mode: 0o644},
		{name: "key file private", user: "client-key: key.pem", mode: 0o644, keyMode: 0o600},
		{name: "key file readable", user: "client-key: key.pem", mode: 0o600, keyMode: 0o644, wantPath: "key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "kubeconfig")
			writeFile(t, path, kubeconfig(tc.user), tc.mode)
			writeFile(t, filepath.Join(dir, "key.pem"), "key", max(tc.keyMode, 0o600))
			err := CheckKubeconfig(path)
			switch tc.wantPath {
			case "":
				checkErr(t, err, "", "")
			case "key":
				checkErr(t, err, "group or others can read it", filepath.Join(dir, "key.pem"))
			default:
				checkErr(t, err, "group or others can read it", path)
			}
		})
	}
}

func kubeconfig(user string) string {
	return "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n" +
		"users:\n- name: u\n  user:\n    " + user + "\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// checkErr fails unless err is nil when want is empty, or an *UnsafeError
// naming path whose message contains want.
func checkErr(t *testing.T, err error, want, path string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var ue *UnsafeError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want an UnsafeError", err)
	}
	if ue.Path != path || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("got %q (path %s), want it to name %s and say %q", err, ue.Path, path, want)
	}
}
