package nodetest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mirrorlet/mirrorlet/runtime/cri"
)

// Containerd is a private containerd started by hack/containerd.sh, with
// its own root, state, socket, CNI bridge and config under Dir.
type Containerd struct {
	Dir string
	// Endpoint is its CRI endpoint, unix://...
	Endpoint string
	// Runtime reads it directly, behind the agents' backs.
	Runtime *cri.Runtime
}

// StartContainerd starts a containerd under dir that pulls from registry
// (host:port, plain HTTP) and uses registry's pause image.
func StartContainerd(ctx context.Context, dir, registry string) (*Containerd, error) {
	out, err := exec.Command(RepoPath("hack/containerd.sh"), "start", dir, registry).Output()
	if err != nil {
		return nil, fmt.Errorf("hack/containerd.sh start %s: %w", dir, err)
	}
	c := &Containerd{Dir: dir, Endpoint: "unix://" + strings.TrimSpace(string(out))}
	if c.Runtime, err = cri.New(ctx, cri.Options{Endpoint: c.Endpoint}); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("connecting to containerd %s: %w", c.Endpoint, err)
	}
	return c, nil
}

// Stop kills its containers, stops it and removes its directory.
func (c *Containerd) Stop() error {
	if out, err := exec.Command(RepoPath("hack/containerd.sh"), "stop", c.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("hack/containerd.sh stop %s: %w\n%s", c.Dir, err, out)
	}
	return nil
}

// Ctr runs this containerd's ctr in the CRI namespace.
func (c *Containerd) Ctr(args ...string) (string, error) {
	full := append([]string{"--address", strings.TrimPrefix(c.Endpoint, "unix://"), "-n", "k8s.io"}, args...)
	out, err := exec.Command(filepath.Join(c.Dir, "bin", "ctr"), full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
