package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoUpAndDown runs README's first command the way a newcomer does
// (hack/demo.sh up, what `make demo` runs), checks that it ends with the
// example static pod Running and answering and its logs shown by kubectl
// logs (the API server calling mirrorlet's node API), then that `down` leaves no
// process, mount or file behind.
func TestDemoUpAndDown(t *testing.T) {
	if _, err := get(8080, "/"); err == nil {
		t.Skip("something already serves on :8080, the example pod's port")
	}
	dir := filepath.Join(t.TempDir(), "demo")
	env := append(os.Environ(), "MIRRORLET_DEMO_DIR="+dir, fmt.Sprintf("MIRRORLET_DEMO_REGISTRY=127.0.0.1:%d", freePort(t)),
		"MIRRORLET_DEMO_NODE=demo-e2e")
	run := func(arg string) string {
		cmd := exec.Command(repoPath("hack/demo.sh"), arg)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hack/demo.sh %s: %v\n%s", arg, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			run("down")
		}
	})
	out := run("up")
	for _, want := range []string{"static-web-demo-e2e", "Running", "the static pod answers on the node: hello from a static pod", "make demo-down"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "kubectl logs static-web-demo-e2e") || strings.Contains(out, "need a kubelet API") {
		t.Errorf("demo hints do not offer kubectl logs on the mirror:\n%s", out)
	}
	eventually(t, 30*time.Second, "kubectl logs on the demo's mirror, through mirrorlet's node API", func() bool {
		logs, err := exec.Command(kubectl, "--kubeconfig", filepath.Join(dir, "kubeconfig"), "logs", "static-web-demo-e2e").CombinedOutput()
		return err == nil && strings.Contains(string(logs), "webserver starting on port 8080")
	})
	pids := map[string]string{}
	for _, name := range []string{"mirrorlet", "localcluster", "registry", "containerd/containerd"} {
		data, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			t.Fatalf("demo left no pid file for %s: %v", name, err)
		}
		pids[name] = strings.TrimSpace(string(data))
	}

	run("down")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("demo-down left %s behind (%v)", dir, err)
	}
	for name, pid := range pids {
		if exec.Command("kill", "-0", pid).Run() == nil {
			t.Errorf("demo-down left %s (pid %s) running", name, pid)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if lines := grepLines(string(mounts), dir); len(lines) > 0 {
		t.Errorf("demo-down left mounts behind:\n%s", strings.Join(lines, "\n"))
	}
	if _, err := get(8080, "/"); err == nil {
		t.Errorf("the example pod still answers on :8080 after demo-down")
	}
}
