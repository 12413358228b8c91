package nodeenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Containerd is a private containerd run by hack/containerd.sh under Dir.
type Containerd struct {
	// Dir holds its root, state, socket, config and log.
	Dir string
	// Registry is the host:port pulled from over plain HTTP.
	Registry string
	// Endpoint is its CRI endpoint, "unix://.../containerd.sock".
	Endpoint string
}

// StartContainerd starts a containerd under dir that pulls from registry
// over plain HTTP (MIRRORLET_CONTAINERD=1.6 runs Debian's 1.6).
func StartContainerd(dir, registry string) (*Containerd, error) {
	c := &Containerd{Dir: dir, Registry: registry}
	out, err := exec.Command(RepoPath("hack/containerd.sh"), "start", dir, registry).Output()
	if err != nil {
		return nil, fmt.Errorf("hack/containerd.sh start %s: %w", dir, err)
	}
	c.Endpoint = "unix://" + strings.TrimSpace(string(out))
	return c, nil
}

// Stop kills its containers, stops it and removes its directory.
func (c *Containerd) Stop() error {
	if out, err := exec.Command(RepoPath("hack/containerd.sh"), "stop", c.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("hack/containerd.sh stop %s: %w\n%s", c.Dir, err, out)
	}
	return nil
}

// Pid is the containerd process's pid, as hack/containerd.sh recorded it.
func (c *Containerd) Pid() (string, error) {
	data, err := os.ReadFile(filepath.Join(c.Dir, "containerd.pid"))
	if err != nil {
		return "", fmt.Errorf("reading containerd's pid: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// Kill stops the containerd process (SIGTERM; its containers keep running
// under their shims) and waits until it has exited.
func (c *Containerd) Kill(t testing.TB) {
	t.Helper()
	pid, err := c.Pid()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("kill", pid).CombinedOutput(); err != nil {
		t.Fatalf("kill containerd: %v %s", err, out)
	}
	Eventually(t, 30*time.Second, "containerd to exit", func() bool {
		return exec.Command("kill", "-0", pid).Run() != nil
	})
}

// Start starts containerd again in the same directory.
func (c *Containerd) Start(t testing.TB) {
	t.Helper()
	if out, err := exec.Command(RepoPath("hack/containerd.sh"), "start", c.Dir, c.Registry).CombinedOutput(); err != nil {
		t.Fatalf("restarting containerd: %v\n%s", err, out)
	}
}

// Restart is Kill then Start.
func (c *Containerd) Restart(t testing.TB) {
	t.Helper()
	c.Kill(t)
	c.Start(t)
}

// Ctr runs the ctr of this containerd (its version) in the CRI namespace:
// how a test acts on the node behind mirrorlet's back.
func (c *Containerd) Ctr(t testing.TB, args ...string) string {
	t.Helper()
	full := append([]string{"--address", strings.TrimPrefix(c.Endpoint, "unix://"), "-n", "k8s.io"}, args...)
	out, err := exec.Command(filepath.Join(c.Dir, "bin", "ctr"), full...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RepoPath is p relative to the root of this checkout.
func RepoPath(p string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", p)
}

// BuildMirrorlet builds the mirrorlet binary of this checkout into dir and
// returns its path.
func BuildMirrorlet(dir string) (string, error) {
	binary := filepath.Join(dir, "mirrorlet")
	cmd := exec.Command("go", "build", "-o", binary, "github.com/mirrorlet/mirrorlet/cmd/mirrorlet")
	cmd.Dir = RepoPath(".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building mirrorlet: %w\n%s", err, out)
	}
	return binary, nil
}
