package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// stopTimes removes the manifest at t0 and returns how long the server
// kept answering and when it stopped answering, both since t0. It may run
// in its own goroutine, so it reports failures with Errorf.
func stopTimes(t *testing.T, n *node, file string, port int) (lastAnswer, stopped time.Duration) {
	t0 := time.Now()
	if err := os.Remove(filepath.Join(n.manifests, file)); err != nil {
		t.Error(err)
		return
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 90*time.Second, true,
		func(context.Context) (bool, error) {
			if _, err := get(port, "/"); err == nil {
				lastAnswer = time.Since(t0)
				return false, nil
			}
			stopped = time.Since(t0)
			return true, nil
		})
	if err != nil {
		t.Errorf("the server of %s still answers 90s after its manifest was removed", file)
	}
	return lastAnswer, stopped
}

// TestGracefulStopHonoursGracePeriod: a removed manifest stops its pod with
// SIGTERM first, SIGKILL only after terminationGracePeriodSeconds.
func TestGracefulStopHonoursGracePeriod(t *testing.T) {
	n := startNode(t)
	// Exits 3 s after SIGTERM, well inside its 30 s grace period.
	slowPort := freePort(t)
	slow := webPod("slow-exit", slowPort, "--term-delay", "3s")
	slow.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
	// Would take 10 min after SIGTERM; its grace period is 4 s.
	stuckPort := freePort(t)
	stuck := webPod("stuck", stuckPort, "--term-delay", "10m")
	stuck.Spec.TerminationGracePeriodSeconds = ptr.To[int64](4)
	n.writeManifest("slow.yaml", slow)
	n.writeManifest("stuck.yaml", stuck)
	n.waitRunning("slow-exit", 2*time.Minute)
	n.waitRunning("stuck", 2*time.Minute)

	var wg sync.WaitGroup
	var slowLast, slowStop, stuckLast, stuckStop time.Duration
	wg.Add(2)
	go func() { defer wg.Done(); slowLast, slowStop = stopTimes(t, n, "slow.yaml", slowPort) }()
	go func() { defer wg.Done(); stuckLast, stuckStop = stopTimes(t, n, "stuck.yaml", stuckPort) }()
	wg.Wait()
	t.Logf("term-delay 3s, grace 30s: answered until %s, stopped at %s", slowLast, slowStop)
	t.Logf("term-delay 10m, grace 4s: answered until %s, stopped at %s", stuckLast, stuckStop)
	if slowLast < 2500*time.Millisecond {
		t.Errorf("the pod that exits 3s after SIGTERM stopped answering after %s: it was not given its time", slowLast)
	}
	if slowStop > 20*time.Second {
		t.Errorf("the pod that exits 3s after SIGTERM took %s to stop", slowStop)
	}
	if stuckLast < 3*time.Second {
		t.Errorf("the pod with a 4s grace period stopped answering after %s: killed before its grace period", stuckLast)
	}
	if stuckStop > 30*time.Second {
		t.Errorf("the pod with a 4s grace period took %s to stop: not killed after its grace period", stuckStop)
	}
}

// TestGraceKeptOnTheNode: a pod whose manifest went away while mirrorlet
// was down is still stopped with its own grace period, read back from the
// runtime (not the 30 s default).
func TestGraceKeptOnTheNode(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	pod := webPod("stuck", port, "--term-delay", "10m")
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](3)
	n.writeManifest("stuck.yaml", pod)
	n.waitRunning("stuck", 2*time.Minute)
	n.stop(syscall.SIGTERM)
	if err := os.Remove(filepath.Join(n.manifests, "stuck.yaml")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n.start()
	eventually(t, time.Minute, "the orphaned pod to stop", func() bool {
		_, err := get(port, "/")
		return err != nil
	})
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the orphaned pod took %s to stop: its 3s grace period was not used", took)
	}
}

// TestManifestUpdateReplacesContainer: a spec change stops the old pod and
// starts the new one; the mirror is replaced.
func TestManifestUpdateReplacesContainer(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	n.writeManifest("web.yaml", webPod("web", port, "--message", "version-one"))
	old := n.waitRunning("web", 2*time.Minute)
	eventually(t, 30*time.Second, "version-one answering", func() bool {
		body, err := get(port, "/")
		return err == nil && strings.Contains(body, "version-one")
	})

	n.writeManifest("web.yaml", webPod("web", port, "--message", "version-two"))
	eventually(t, time.Minute, "version-two answering", func() bool {
		body, err := get(port, "/")
		return err == nil && strings.Contains(body, "version-two")
	})
	var m *corev1.Pod
	eventually(t, 30*time.Second, "a new, running mirror", func() bool {
		m = n.mirror("web")
		return m != nil && m.UID != old.UID && m.Status.Phase == corev1.PodRunning
	})
	if got := m.Spec.Containers[0].Args; !strings.Contains(strings.Join(got, " "), "version-two") {
		t.Errorf("mirror args %v, want the new manifest's", got)
	}
	if pods := n.runtimePods(); len(pods) != 1 {
		t.Errorf("runtime pods after the update: %v, want exactly one", pods)
	}
	if rc := m.Status.ContainerStatuses[0].RestartCount; rc != 0 {
		t.Errorf("restartCount %d, want 0 for a new pod", rc)
	}
}

// runningWeb starts a node running one web pod ("web", from web.yaml) and
// returns it with its port, container ID and first answer (which names
// the server's pid, so an unchanged answer means an unrestarted server).
func runningWeb(t *testing.T) (n *node, pod *corev1.Pod, port int, id, body string) {
	t.Helper()
	n = startNode(t)
	port = freePort(t)
	pod = webPod("web", port)
	n.writeManifest("web.yaml", pod)
	m := n.waitRunning("web", 2*time.Minute)
	id = m.Status.ContainerStatuses[0].ContainerID
	return n, pod, port, id, answer(t, port, "/")
}

// TestLabelEditKeepsContainer: a metadata-only edit updates the mirror in
// place and never restarts the container (where the kubelet restarts it).
func TestLabelEditKeepsContainer(t *testing.T) {
	n, pod, port, id, before := runningWeb(t)
	var m *corev1.Pod
	pod.Labels["tier"] = "web"
	n.writeManifest("web.yaml", pod)
	eventually(t, 30*time.Second, "the new label on the mirror", func() bool {
		m = n.mirror("web")
		return m != nil && m.Labels["tier"] == "web"
	})
	after, err := get(port, "/")
	if err != nil || after != before || m.Status.ContainerStatuses[0].ContainerID != id {
		t.Errorf("container changed on a label edit: %q -> %q (%v), %s -> %s", before, after, err, id, m.Status.ContainerStatuses[0].ContainerID)
	}
}

// proveAlive edits a label and waits for the mirror to show it: proof that
// a (re)started mirrorlet has read the manifests and the runtime.
func proveAlive(t *testing.T, n *node, pod *corev1.Pod, file, value string) *corev1.Pod {
	t.Helper()
	pod.Labels["probe"] = value
	n.writeManifest(file, pod)
	var m *corev1.Pod
	eventually(t, time.Minute, "mirrorlet to sync the label probe="+value, func() bool {
		m = n.mirror(pod.Name)
		return m != nil && m.Labels["probe"] == value && m.Status.Phase == corev1.PodRunning
	})
	return m
}

// TestRestartAdoptsRunningPods: restarting mirrorlet, gracefully or with
// kill -9, restarts no container and never runs a pod twice.
func TestRestartAdoptsRunningPods(t *testing.T) {
	n, pod, port, id, before := runningWeb(t)
	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		n.stop(sig)
		if body, err := get(port, "/"); err != nil || body != before {
			t.Fatalf("after %s of mirrorlet the server answers %q (%v), want %q", sig, body, err, before)
		}
		n.start()
		m := proveAlive(t, n, pod, "web.yaml", string(rune('a'+i)))
		cs := m.Status.ContainerStatuses[0]
		if cs.ContainerID != id || cs.RestartCount != 0 {
			t.Fatalf("after %s and restart of mirrorlet: container %s restartCount %d, want %s and 0", sig, cs.ContainerID, cs.RestartCount, id)
		}
		if body, err := get(port, "/"); err != nil || body != before {
			t.Fatalf("after %s and restart of mirrorlet the server answers %q (%v), want %q", sig, body, err, before)
		}
		if pods := n.runtimePods(); len(pods) != 1 {
			t.Fatalf("runtime pods after %s and restart: %v, want exactly one", sig, pods)
		}
	}
}

// TestContainerdRestartIsSurvived: containers keep running while
// containerd restarts; mirrorlet reconnects and restarts nothing.
func TestContainerdRestartIsSurvived(t *testing.T) {
	n, pod, port, id, before := runningWeb(t)

	restartContainerd(t)
	if body, err := get(port, "/"); err != nil || body != before {
		t.Fatalf("after the containerd restart the server answers %q (%v), want %q", body, err, before)
	}
	m := proveAlive(t, n, pod, "web.yaml", "after-restart")
	if cs := m.Status.ContainerStatuses[0]; cs.ContainerID != id || cs.RestartCount != 0 {
		t.Fatalf("after the containerd restart: container %s restartCount %d, want %s and 0", cs.ContainerID, cs.RestartCount, id)
	}
	// mirrorlet still acts through the new connection.
	ctr(t, "tasks", "kill", "-s", "SIGKILL", containerID(id))
	eventually(t, time.Minute, "the killed container restarted", func() bool {
		m = n.mirror("web")
		_, err := get(port, "/")
		return m != nil && len(m.Status.ContainerStatuses) == 1 && m.Status.ContainerStatuses[0].RestartCount == 1 && err == nil
	})
}

// restartContainerd stops the suite's containerd process (its containers
// keep running under their shims) and starts it again.
func restartContainerd(t *testing.T) {
	t.Helper()
	ctd.Restart(t)
}

// TestImageNeverPulledGivesEvent: a missing image with imagePullPolicy
// Never shows as ErrImageNeverPull on the mirror and in its Events; as in
// the kubelet it is tried again at each resync without a pull back-off, so
// it never turns into ImagePullBackOff.
func TestImageNeverPulledGivesEvent(t *testing.T) {
	n := startNode(t)
	pod := webPod("never", freePort(t))
	pod.Spec.Containers[0].Image = registry.Host + "/mirrorlet/not-there:v1"
	pod.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	n.writeManifest("never.yaml", pod)
	var m *corev1.Pod
	eventually(t, time.Minute, "the mirror to show ErrImageNeverPull", func() bool {
		m = n.mirror("never")
		if m == nil || len(m.Status.ContainerStatuses) == 0 {
			return false
		}
		w := m.Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == "ErrImageNeverPull"
	})
	eventually(t, time.Minute, "a Warning Event about the image on the mirror", func() bool {
		var events corev1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range events.Items {
			if string(e.InvolvedObject.UID) == m.Annotations["kubernetes.io/config.mirror"] && e.Type == corev1.EventTypeWarning && e.Reason == "ErrImageNeverPull" &&
				strings.Contains(e.Message, "not present with pull policy of Never") &&
				strings.Contains(e.Message, "not-there") {
				return true
			}
		}
		return false
	})
	// Tried again 10 s later (the retry of a failed sync), still ErrImageNeverPull.
	var reasons []string
	eventually(t, time.Minute, "the image looked for again", func() bool {
		if m := n.mirror("never"); m != nil && m.Status.ContainerStatuses[0].State.Waiting != nil {
			if r := m.Status.ContainerStatuses[0].State.Waiting.Reason; r != "ErrImageNeverPull" {
				reasons = append(reasons, r)
			}
		}
		log, _ := os.ReadFile(filepath.Join(n.dir, "mirrorlet.log"))
		return len(grepLines(string(log), "Image not present with pull policy Never")) >= 2
	})
	if len(reasons) > 0 {
		t.Errorf("waiting reasons other than ErrImageNeverPull: %q", reasons)
	}
	// kubectl describe shows the container's waiting reason and the Event:
	// for a mirror pod kubectl asks for the events of involvedObject.uid =
	// the config hash (as the kubelet records them), which is how mirrorlet
	// records them too.
	out := kubectlOut(t, "describe", "pod", n.mirrorName("never"))
	if !strings.Contains(out, "ErrImageNeverPull") {
		t.Errorf("kubectl describe does not show ErrImageNeverPull:\n%s", out)
	}
	if _, events, _ := strings.Cut(out, "Events:"); !strings.Contains(events, "not present with pull policy of Never") {
		t.Errorf("kubectl describe shows no Event about the image:\n%s", out)
	}
}
