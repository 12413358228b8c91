package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mirrorlet/mirrorlet/controllers/staticpod"
	"github.com/mirrorlet/mirrorlet/manifest"
)

// versionedWeb is the web pod answering message, opted into automatic
// rollback after window ("" opts out).
func versionedWeb(port int, message, window string) *corev1.Pod {
	pod := webPod("web", port, "--message", message)
	if window != "" {
		pod.Annotations = map[string]string{"mirrorlet.io/rollback-after": window}
	}
	return pod
}

// mirrorlet runs the mirrorlet binary with args and returns its output
// (stdout, and stderr on failure).
func mirrorlet(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("mirrorlet %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// revisionCommand runs `mirrorlet history|rollback web ...` for node n.
func (n *node) revisionCommand(cmd string, args ...string) (string, error) {
	return mirrorlet(append([]string{cmd, "web", "--root-dir", n.root, "--node-name", n.name}, args...)...)
}

// rolledBack returns the mirror's mirrorlet.io/RolledBack condition, or nil.
func rolledBack(m *corev1.Pod) *corev1.PodCondition {
	if m == nil {
		return nil
	}
	for i := range m.Status.Conditions {
		if m.Status.Conditions[i].Type == "mirrorlet.io/RolledBack" {
			return &m.Status.Conditions[i]
		}
	}
	return nil
}

// waitRevision waits until the mirror of web shows revision rev running,
// rolled back for reason ("" for no rollback), and returns it.
func (n *node) waitRevision(t *testing.T, rev, reason string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var m *corev1.Pod
	eventually(t, timeout, fmt.Sprintf("mirror at revision %s, rolled back for %q", rev, reason), func() bool {
		m = n.mirror("web")
		if m == nil || m.Annotations["mirrorlet.io/revision"] != rev || m.Status.Phase != corev1.PodRunning {
			return false
		}
		c := rolledBack(m)
		if reason == "" {
			return c == nil
		}
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == reason
	})
	return m
}

// answering waits until the server on port answers with message and
// returns the answer (which names the server's pid).
func answering(t *testing.T, port int, message string, timeout time.Duration) string {
	t.Helper()
	var body string
	eventually(t, timeout, "the server answering "+message, func() bool {
		var err error
		body, err = get(port, "/")
		return err == nil && strings.Contains(body, message)
	})
	return body
}

// TestBadRevisionsRollBackAutomatically: with mirrorlet.io/rollback-after,
// a revision whose container exits at once, then one whose readiness
// probe never passes, are each rolled back to the last good revision
// within the window; the old server answers again, the mirror says so
// (condition, annotation, Event), the metric counts it, nothing loops,
// and a restarted mirrorlet keeps the rollback.
func TestBadRevisionsRollBackAutomatically(t *testing.T) {
	metricsPort, healthPort := freePort(t), freePort(t)
	n := startNode(t, withFlags("--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", healthPort)))
	port := freePort(t)
	n.writeManifest("web.yaml", versionedWeb(port, "version-one", "10s"))
	n.waitRevision(t, "1", "", 2*time.Minute)
	answering(t, port, "version-one", 30*time.Second)

	// Revision 2: the container exits at once; it crash-loops.
	crashing := versionedWeb(port, "version-two", "10s")
	crashing.Spec.Containers[0].Command = []string{"/webserver", "exit", "1"}
	n.writeManifest("web.yaml", crashing)
	written := time.Now()
	m := n.waitRevision(t, "1", "CrashLoopBackOff", time.Minute)
	t.Logf("crash-looping revision rolled back %s after the manifest was written", time.Since(written).Round(100*time.Millisecond))
	if c := rolledBack(m); !strings.Contains(c.Message, "revision 2 crash-looped") {
		t.Errorf("condition message %q does not name the failed revision", c.Message)
	}
	answering(t, port, "version-one", 30*time.Second)
	n.waitEvent("web", corev1.EventTypeWarning, "RolledBack", "Revision 2 crash-looped", "rolled back to revision 1")

	// Revision 3: runs, but its readiness probe never passes.
	unready := versionedWeb(port, "version-three", "10s")
	unready.Spec.Containers[0].ReadinessProbe = httpProbe(intstr.FromInt(freePort(t)), "/", 1, 1)
	n.writeManifest("web.yaml", unready)
	answering(t, port, "version-three", time.Minute)
	written = time.Now()
	m = n.waitRevision(t, "1", "NotReady", time.Minute)
	took := time.Since(written)
	t.Logf("never-ready revision rolled back %s after it answered", took.Round(100*time.Millisecond))
	if took < 5*time.Second {
		t.Errorf("rolled back after %s, before its 10s window ended", took)
	}
	if c := rolledBack(m); !strings.Contains(c.Message, "revision 3 was not Ready within 10s") {
		t.Errorf("condition message %q", c.Message)
	}
	before := answering(t, port, "version-one", 30*time.Second)
	if v, ok := metric(t, metricsPort, `mirrorlet_revision_rollbacks_total{pod="default/web-`+n.name+`",reason="NotReady"}`); !ok || v != 1 {
		t.Errorf("NotReady rollbacks metric = %v (found %v), want 1", v, ok)
	}
	// (The API server folds this second RolledBack Event into the series of
	// the first: the condition and the metric say it.)

	// No loop: the failed revision is not retried, the good one keeps
	// serving, and its mirror (pinned revision and condition, written by
	// server-side apply) is not written again.
	eventually(t, 30*time.Second, "the pinned mirror Ready", func() bool { return n.ready("web") })
	writes := mirrorWrites(t, metricsPort)
	consistently(t, 5*time.Second, "revision 1 serving, unrestarted", func() bool {
		body, err := get(port, "/")
		m := n.mirror("web")
		return err == nil && body == before && m != nil && m.Annotations["mirrorlet.io/revision"] == "1"
	})
	if again := mirrorWrites(t, metricsPort); again != writes {
		t.Errorf("the pinned mirror was written %v times in 5 s", again-writes)
	}

	// A restarted mirrorlet keeps running the rolled-back revision.
	n.stop(syscall.SIGTERM)
	n.start()
	eventually(t, time.Minute, "mirrorlet status to show the pin", func() bool {
		out, err := mirrorlet("status", "--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", healthPort))
		return err == nil && strings.Contains(out, "pinned: default/web-"+n.name+" runs revision 1 (NotReady: revision 3 was not Ready")
	})
	consistently(t, 5*time.Second, "revision 1 serving after the restart, unrestarted", func() bool {
		body, err := get(port, "/")
		return err == nil && body == before && len(n.runtimePods()) == 1
	})
	if m := n.mirror("web"); rolledBack(m) == nil || m.Annotations["mirrorlet.io/revision"] != "1" {
		t.Errorf("after the restart the mirror lost the rollback: %v", m.Annotations)
	}
	out, err := n.revisionCommand("history")
	if err != nil || !strings.Contains(out, "rolled back: NotReady") || !strings.Contains(out, "rolled back: CrashLoopBackOff") {
		t.Errorf("history after the restart:\n%s%v", out, err)
	}
}

// TestRollbackAndHistoryByHand: mirrorlet history lists the revisions;
// mirrorlet rollback runs an earlier one until the manifest changes,
// without rewriting the manifest; rolling back to the manifest's own
// revision ends the pin; an unknown revision is refused.
func TestRollbackAndHistoryByHand(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	n.writeManifest("web.yaml", versionedWeb(port, "version-one", ""))
	n.waitRevision(t, "1", "", 2*time.Minute)
	n.writeManifest("web.yaml", versionedWeb(port, "version-two", ""))
	n.waitRevision(t, "2", "", time.Minute)
	answering(t, port, "version-two", 30*time.Second)

	out, err := n.revisionCommand("history")
	if err != nil || len(grepLines(out, "web.yaml")) != 2 || !strings.Contains(grepLines(out, "web.yaml")[1], "running") {
		t.Fatalf("history:\n%s%v", out, err)
	}
	if out, err := n.revisionCommand("history", "--revision", "1"); err != nil || !strings.Contains(out, "version-one") {
		t.Errorf("history --revision 1 does not print the first manifest:\n%s%v", out, err)
	}

	if out, err := n.revisionCommand("rollback"); err != nil || !strings.Contains(out, "revision 1 runs") {
		t.Fatalf("rollback:\n%s%v", out, err)
	}
	m := n.waitRevision(t, "1", "ManualRollback", time.Minute)
	answering(t, port, "version-one", 30*time.Second)
	if c := rolledBack(m); !strings.Contains(c.Message, "mirrorlet rollback pinned revision 1") {
		t.Errorf("condition message %q", c.Message)
	}
	if out, err := n.revisionCommand("history"); err != nil || !strings.Contains(out, "running (pinned)") {
		t.Errorf("history while pinned:\n%s%v", out, err)
	}

	if out, err := n.revisionCommand("rollback", "--to-revision", "9"); err == nil || !strings.Contains(out, "no revision 9") {
		t.Errorf("rollback to a missing revision:\n%s%v", out, err)
	}
	if out, err := n.revisionCommand("rollback", "--to-revision", "2"); err != nil {
		t.Fatalf("rollback to the manifest's revision:\n%s%v", out, err)
	}
	n.waitRevision(t, "2", "", time.Minute)
	answering(t, port, "version-two", 30*time.Second)

	// A pin ends when the manifest changes.
	if out, err := n.revisionCommand("rollback", "--to-revision", "1"); err != nil {
		t.Fatalf("rollback:\n%s%v", out, err)
	}
	answering(t, port, "version-one", time.Minute)
	n.writeManifest("web.yaml", versionedWeb(port, "version-three", ""))
	n.waitRevision(t, "3", "", time.Minute)
	answering(t, port, "version-three", 30*time.Second)
}

// TestRollbackWindowStartsAfterStartOrderWait: a new revision whose
// containers wait for a dependency (mirrorlet.io/after) longer than its
// rollback window is not rolled back for that wait: its window counts
// from when its containers start, and it settles once Ready.
func TestRollbackWindowStartsAfterStartOrderWait(t *testing.T) {
	n := startNode(t)
	never := etcdLikePod(freePort(t), time.Hour)
	never.Name = "never"
	n.writeManifest("never.yaml", never)
	port := freePort(t)
	n.writeManifest("web.yaml", versionedWeb(port, "version-one", "4s"))
	n.waitRevision(t, "1", "", 2*time.Minute)
	answering(t, port, "version-one", 30*time.Second)

	// Revision 2 waits 8 s for a pod that is never Ready, twice its window.
	waiting := versionedWeb(port, "version-two", "4s")
	waiting.Annotations[manifest.AnnotationAfter] = "never"
	waiting.Annotations[manifest.AnnotationAfterTimeout] = "8s"
	n.writeManifest("web.yaml", waiting)
	eventually(t, time.Minute, "revision 2 to wait for never", func() bool {
		reason, _ := n.waitingFor("web", "web")
		m := n.mirror("web")
		return reason == staticpod.ReasonWaitingForDependencies && m != nil && m.Annotations["mirrorlet.io/revision"] == "2"
	})
	n.waitEvent("web", corev1.EventTypeWarning, "DependenciesNotReady", "never", "starting anyway")
	answering(t, port, "version-two", 30*time.Second)
	eventually(t, 30*time.Second, "revision 2 settled in mirrorlet history", func() bool {
		out, err := n.revisionCommand("history")
		lines := grepLines(out, "web.yaml")
		return err == nil && len(lines) == 2 && strings.Contains(lines[1], "ready, settled")
	})
	if m := n.mirror("web"); m == nil || rolledBack(m) != nil || m.Annotations["mirrorlet.io/revision"] != "2" {
		t.Errorf("revision 2 was rolled back for its start order wait: %v", m)
	}
}

// mirrorWrites sums mirrorlet_mirror_writes_total over its operations.
func mirrorWrites(t *testing.T, metricsPort int) float64 {
	t.Helper()
	var sum float64
	for _, op := range []string{"create", "apply", "delete", "status"} {
		for _, result := range []string{"ok", "error"} {
			v, _ := metric(t, metricsPort, fmt.Sprintf(`mirrorlet_mirror_writes_total{operation=%q,result=%q}`, op, result))
			sum += v
		}
	}
	return sum
}
