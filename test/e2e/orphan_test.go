package e2e

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDataOfVersionGoneWhileStoppedIsRemoved: a pod version whose sandbox
// went while mirrorlet was stopped (as in a node reboot) and whose manifest
// was edited meanwhile leaves no data behind: after the restart the new
// version runs and the old version's directory under --root-dir and its
// log directory are removed.
func TestDataOfVersionGoneWhileStoppedIsRemoved(t *testing.T) {
	n, pod, port, _, _ := runningWeb(t)
	old, _ := n.runtimePod("web")
	oldData := filepath.Join(n.root, "pods", string(old.UID))
	oldLogs, _ := filepath.Glob(filepath.Join(n.logs, "*_"+string(old.UID)))
	if _, err := os.Stat(oldData); err != nil || len(oldLogs) != 1 {
		t.Fatalf("the running version's data %v, logs %v", err, oldLogs)
	}
	n.stop(syscall.SIGTERM)
	if err := nodeRuntime.StopPod(context.Background(), old.SandboxID, 0); err != nil {
		t.Fatal(err)
	}
	pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, "--message", "second version")
	n.writeManifest("web.yaml", pod)
	n.start()
	n.waitRunning("web", time.Minute)
	eventually(t, 30*time.Second, "the old version's data and logs removed", func() bool {
		_, dataErr := os.Stat(oldData)
		_, logErr := os.Stat(oldLogs[0])
		return errors.Is(dataErr, fs.ErrNotExist) && errors.Is(logErr, fs.ErrNotExist)
	})
	if body := answer(t, port, "/"); !strings.HasPrefix(body, "second version") {
		t.Errorf("the new version answers %q", body)
	}
	cur, _ := n.runtimePod("web")
	if _, err := os.Stat(filepath.Join(n.root, "pods", string(cur.UID))); err != nil {
		t.Errorf("the running version's data: %v", err)
	}
}
