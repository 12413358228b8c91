package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/cri"
	"github.com/mirrorlet/mirrorlet/test/agenttest"
	"github.com/mirrorlet/mirrorlet/test/images"
)

// containerdEnv is a private containerd (hack/containerd.sh) with the test
// images in a local registry.
type containerdEnv struct {
	endpoint, image string
	cri             *cri.Runtime
}

// startContainerd starts the registry and a private containerd, stopped
// when the test ends.
func startContainerd(t testing.TB) containerdEnv {
	t.Helper()
	reg, err := images.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	dir := t.TempDir()
	if err := images.BuildAndPush(t.Context(), reg, dir); err != nil {
		t.Fatalf("building test images: %v", err)
	}
	ctdDir := filepath.Join(workDir, "ctd-"+strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
	script := filepath.Join("..", "..", "hack", "containerd.sh")
	out, err := exec.Command(script, "start", ctdDir, reg.Host).Output()
	if err != nil {
		t.Fatalf("hack/containerd.sh start: %v", err)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(script, "stop", ctdDir).CombinedOutput(); err != nil {
			t.Errorf("stopping containerd: %v\n%s", err, out)
		}
	})
	env := containerdEnv{endpoint: "unix://" + strings.TrimSpace(string(out)), image: reg.Ref("webserver")}
	if env.cri, err = cri.New(t.Context(), cri.Options{Endpoint: env.endpoint}); err != nil {
		t.Fatal(err)
	}
	return env
}

// drained reports whether containerd runs no pod any more.
func (c containerdEnv) drained() bool {
	pods, err := c.cri.ListPods(context.Background())
	if err != nil {
		return false
	}
	for _, p := range pods {
		if p.Ready {
			return false
		}
		for _, c := range p.Containers {
			if c.State == mruntime.ContainerRunning {
				return false
			}
		}
	}
	return true
}

// agentConfig is an in-process agent of node with its own identity.
func agentConfig(t testing.TB, node string) agenttest.Config {
	return agenttest.Config{RestConfig: nodeConfig(t, node), Reader: reader}
}
