package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRefusesUnsafeSourcesAtStart runs the mirrorlet command with unsafe
// files and URLs: it must refuse to start with a message naming the path,
// the mode and why. Were it to start, it would run until the deadline and
// return without an error.
func TestRefusesUnsafeSourcesAtStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, manifests, kubeconfig string) []string
		want  []string
	}{{
		name: "group-writable manifest directory",
		setup: func(t *testing.T, _, manifests, _ string) []string {
			chmod(t, manifests, 0o775)
			return nil
		},
		want: []string{"refusing to start: manifest directory ", "/manifests: unsafe permissions (mode drwxrwxr-x", "writable by its group", "runs containers as root"},
	}, {
		name: "world-writable manifest",
		setup: func(t *testing.T, _, manifests, _ string) []string {
			writeMode(t, filepath.Join(manifests, "web.yaml"), "kind: Pod\n", 0o666)
			return nil
		},
		want: []string{"manifest ", "/manifests/web.yaml: unsafe permissions (mode -rw-rw-rw-", "writable by others", "--allow-insecure-manifest-permissions"},
	}, {
		name: "group-writable directory in the root directory",
		setup: func(t *testing.T, dir, _, _ string) []string {
			root := filepath.Join(dir, "root")
			if err := os.MkdirAll(filepath.Join(root, "revisions"), 0o700); err != nil {
				t.Fatal(err)
			}
			chmod(t, filepath.Join(root, "revisions"), 0o770)
			return []string{"--root-dir", root}
		},
		want: []string{"refusing to start: root directory ", "/root/revisions: unsafe permissions (mode drwxrwx---", "writable by its group", "--allow-insecure-manifest-permissions"},
	}, {
		name: "world-readable kubeconfig with a token",
		setup: func(t *testing.T, _, _, kubeconfig string) []string {
			chmod(t, kubeconfig, 0o644)
			return nil
		},
		want: []string{"refusing to start: kubeconfig ", "/kubeconfig: unsafe permissions (mode -rw-r--r--", "holds a credential", "chmod 600"},
	}, {
		name: "plain http manifest URL to the network",
		setup: func(*testing.T, string, string, string) []string {
			return []string{"--manifest-url", "http://192.0.2.10/pods"}
		},
		want: []string{"refusing to start: manifest URL \"http://192.0.2.10/pods\": plain http:// to 192.0.2.10, which is not a loopback address", "--manifest-url-allow-http"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			manifests, kubeconfig := filepath.Join(dir, "manifests"), filepath.Join(dir, "kubeconfig")
			if err := os.Mkdir(manifests, 0o755); err != nil {
				t.Fatal(err)
			}
			writeMode(t, kubeconfig, tokenKubeconfig, 0o600)
			args := append([]string{"--kubeconfig", kubeconfig, "--node-name", "n1", "--pod-manifest-path", manifests,
				"--container-runtime-endpoint", "fake://", "--healthz-bind-address", "0", "--metrics-bind-address", "0"},
				tc.setup(t, dir, manifests, kubeconfig)...)
			err := runAgent(t, args...)
			if err == nil {
				t.Fatal("mirrorlet started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestAllowInsecureManifestPermissions starts despite a group-writable
// manifest directory when told to.
func TestAllowInsecureManifestPermissions(t *testing.T) {
	dir := t.TempDir()
	chmod(t, dir, 0o775)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	writeMode(t, kubeconfig, tokenKubeconfig, 0o600)
	err := runAgent(t, "--kubeconfig", kubeconfig, "--node-name", "n1", "--pod-manifest-path", dir,
		"--container-runtime-endpoint", "fake://", "--healthz-bind-address", "0", "--metrics-bind-address", "0",
		"--port", "0", "--root-dir", t.TempDir(), "--allow-insecure-manifest-permissions")
	if err != nil {
		t.Fatalf("refused despite --allow-insecure-manifest-permissions: %v", err)
	}
}

// runAgent runs the mirrorlet command for at most two seconds.
func runAgent(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cmd := newRootCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	return cmd.ExecuteContext(ctx)
}

const tokenKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: secret}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func writeMode(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}
