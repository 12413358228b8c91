package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// Fault 7, the pod log directory full (a 1 MiB tmpfs, filled up): every
// mirror gets the condition mirrorlet.io/LogsWritable False and a Warning
// Event, mirrorlet logs it, the running container is not touched, and a
// pod added meanwhile still runs. When space returns the condition turns
// True again, with a Normal Event and a log line.
func TestLogDirectoryFull(t *testing.T) {
	logs := mountTmpfs(t, "1m")
	a := startAgent(t, withLogs(logs))
	port := nodetest.FreePort(t)
	a.WriteManifest("steady.yaml", webPod("steady", port))
	m := a.waitRunning("steady", time.Minute)
	id := m.Status.ContainerStatuses[0].ContainerID
	answer := firstAnswer(t, port)
	full := time.Now()
	filler := fill(t, logs)
	a.WriteManifest("fresh.yaml", webPod("fresh", nodetest.FreePort(t)))
	for _, pod := range []string{"steady", "fresh"} {
		eventuallyNil(t, time.Minute, pod+"'s mirror to say the log directory is full", func() error {
			return a.logsCondition(pod, corev1.ConditionFalse, "no space left")
		})
	}
	t.Logf("the mirrors said the log directory is full %s after it filled up", time.Since(full).Round(time.Millisecond))
	a.waitEvent(t, "steady", corev1.EventTypeWarning, "LogDirectoryUnwritable")
	if !strings.Contains(a.logText(), `"msg":"Pod log directory does not take container logs; containers keep running"`) {
		t.Errorf("no log line about the full log directory")
	}
	a.waitRunning("fresh", time.Minute)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"steady", "fresh"} {
		eventuallyNil(t, time.Minute, pod+"'s mirror to say the log directory takes logs again", func() error {
			return a.logsCondition(pod, corev1.ConditionTrue, "")
		})
	}
	a.waitEvent(t, "steady", corev1.EventTypeNormal, "LogDirectoryWritable")
	if !strings.Contains(a.logText(), `"msg":"Pod log directory takes container logs again"`) {
		t.Errorf("no log line about the recovery")
	}
	m = a.waitRunning("steady", time.Minute)
	if cs := m.Status.ContainerStatuses[0]; cs.ContainerID != id || cs.RestartCount != 0 {
		t.Errorf("steady's container %s restartCount %d, want %s and 0: a full log directory touched it", cs.ContainerID, cs.RestartCount, id)
	}
	if body, err := nodetest.Get(port, "/"); err != nil || body != answer {
		t.Errorf("steady answers %q (%v), want the same server (%q)", body, err, answer)
	}
}

// logsCondition checks pod's mirror for the LogsWritable condition with
// status and a message containing msg.
func (a *agent) logsCondition(pod string, status corev1.ConditionStatus, msg string) error {
	m := a.mirror(pod)
	if m == nil {
		return fmt.Errorf("no mirror")
	}
	for _, c := range m.Status.Conditions {
		if c.Type == "mirrorlet.io/LogsWritable" {
			if c.Status != status || !strings.Contains(c.Message, msg) {
				return fmt.Errorf("condition %s %q", c.Status, c.Message)
			}
			return nil
		}
	}
	return fmt.Errorf("no LogsWritable condition in %v", m.Status.Conditions)
}

// waitEvent waits for an Event of type and reason on pod's mirror (as
// kubectl describe finds them: involvedObject.uid = the config hash).
func (a *agent) waitEvent(t *testing.T, pod, eventType, reason string) {
	t.Helper()
	nodetest.Eventually(t, time.Minute, reason+" Event on "+a.mirrorName(pod), func() bool {
		m := a.mirror(pod)
		var events corev1.EventList
		if m == nil || admin.List(context.Background(), &events, client.InNamespace("default")) != nil {
			return false
		}
		for _, e := range events.Items {
			if string(e.InvolvedObject.UID) == m.Annotations["kubernetes.io/config.mirror"] && e.Type == eventType && e.Reason == reason {
				return true
			}
		}
		return false
	})
}

// mountTmpfs mounts a tmpfs of size under a new directory, unmounted when
// the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file into dir until the file system is full and returns
// its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}
