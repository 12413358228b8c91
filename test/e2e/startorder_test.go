package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/mirrorlet/mirrorlet/controllers/podstatus"
	"github.com/mirrorlet/mirrorlet/controllers/staticpod"
	"github.com/mirrorlet/mirrorlet/manifest"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// readyzProbe is a readiness probe of /readyz every second.
func readyzProbe(port int) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Port: intstr.FromInt(port), Path: "/readyz"}}, PeriodSeconds: 1, FailureThreshold: 1}
}

// etcdLikePod listens on port only after listenAfter; Ready once it does.
func etcdLikePod(port int, listenAfter time.Duration) *corev1.Pod {
	p := webPod("etcd", port)
	c := &p.Spec.Containers[0]
	c.Name, c.Image = "etcd", registry.Ref("fakeetcd")
	c.Args = []string{"--port", fmt.Sprint(port), "--listen-after", listenAfter.String()}
	c.ReadinessProbe = readyzProbe(port)
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	return p
}

// apiserverLikePod exits 1 at start unless the etcd-like pod listens on
// etcdPort; after is its mirrorlet.io/after ("" for none).
func apiserverLikePod(port, etcdPort int, after string) *corev1.Pod {
	p := webPod("apiserver", port)
	c := &p.Spec.Containers[0]
	c.Name, c.Image = "apiserver", registry.Ref("fakeapiserver")
	c.Args = []string{"--port", fmt.Sprint(port), "--etcd", fmt.Sprintf("127.0.0.1:%d", etcdPort)}
	c.ReadinessProbe = readyzProbe(port)
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	if after != "" {
		p.Annotations = map[string]string{manifest.AnnotationAfter: after}
	}
	return p
}

// ready reports whether the mirror of pod is Ready.
func (n *node) ready(pod string) bool {
	m := n.mirror(pod)
	return m != nil && condition(m, corev1.PodReady) == corev1.ConditionTrue
}

// waitingFor returns the waiting reason and message of the mirror's
// container, "" when it is not waiting.
func (n *node) waitingFor(pod, container string) (string, string) {
	cs := containerStatus(n.mirror(pod), container)
	if cs == nil || cs.State.Waiting == nil {
		return "", ""
	}
	return cs.State.Waiting.Reason, cs.State.Waiting.Message
}

// TestStartOrderWaitsForReadyDependency: an apiserver-like pod that names
// an etcd-like one in mirrorlet.io/after starts only once the etcd-like
// pod is Ready (its mirror says it waits meanwhile), so it never crashes;
// a restart of the etcd-like pod restarts nothing else; after a reboot
// of the node (every sandbox dead) the order holds again; after a restart
// of mirrorlet it is not applied again to the pods that run: a crashed
// apiserver-like container starts again at once.
func TestStartOrderWaitsForReadyDependency(t *testing.T) {
	n := startNode(t)
	etcdPort, apiPort := freePort(t), freePort(t)
	n.writeManifest("apiserver.yaml", apiserverLikePod(apiPort, etcdPort, "etcd"))
	// 8 s: the mirror's "waiting for etcd" must be seen before etcd is
	// Ready, also after the reboot below, on a loaded machine.
	n.writeManifest("etcd.yaml", etcdLikePod(etcdPort, 8*time.Second))

	eventually(t, time.Minute, "the apiserver-like mirror to say it waits for etcd", func() bool {
		reason, msg := n.waitingFor("apiserver", "apiserver")
		return reason == staticpod.ReasonWaitingForDependencies && strings.Contains(msg, "etcd")
	})
	if n.ready("etcd") {
		t.Fatal("etcd-like pod Ready already: the test cannot tell")
	}
	if a := n.runningAttempt("apiserver", "apiserver"); a != -1 {
		t.Fatalf("the apiserver-like container runs (attempt %d) before etcd is Ready", a)
	}
	eventually(t, time.Minute, "both Ready", func() bool { return n.ready("etcd") && n.ready("apiserver") })
	if cs := containerStatus(n.mirror("apiserver"), "apiserver"); cs.RestartCount != 0 {
		t.Fatalf("the apiserver-like container restarted %d times: it started before etcd was Ready", cs.RestartCount)
	}

	t.Log("the etcd-like container is killed on the node: it restarts, the apiserver-like one does not")
	etcdID := containerID(containerStatus(n.mirror("etcd"), "etcd").ContainerID)
	ctr(t, "tasks", "kill", "-s", "SIGKILL", etcdID)
	eventually(t, time.Minute, "etcd-like restarted", func() bool { return n.runningAttempt("etcd", "etcd") == 1 })
	consistently(t, 3*time.Second, "the apiserver-like container keeps running, attempt 0", func() bool {
		return n.runningAttempt("apiserver", "apiserver") == 0
	})

	t.Log("the node reboots: every container and sandbox dies while mirrorlet is stopped; in its new sandbox " +
		"the apiserver-like pod waits for the etcd-like one again and does not crash")
	n.stop(syscall.SIGTERM)
	for _, pod := range []string{"etcd", "apiserver"} {
		n.killPod(pod)
	}
	n.start()
	eventually(t, time.Minute, "the apiserver-like mirror to say it waits for etcd again", func() bool {
		reason, _ := n.waitingFor("apiserver", "apiserver")
		return reason == staticpod.ReasonWaitingForDependencies
	})
	eventually(t, time.Minute, "both Ready again", func() bool { return n.ready("etcd") && n.ready("apiserver") })
	if _, a := n.latest("apiserver", "apiserver"); a != 1 {
		t.Fatalf("the apiserver-like container is at attempt %d after the reboot, want 1: it crashed", a)
	}

	t.Log("mirrorlet restarts while both containers are killed: the apiserver-like one starts again at once, unordered")
	n.stop(syscall.SIGTERM)
	_, before := n.latest("apiserver", "apiserver")
	for _, pod := range []string{"etcd", "apiserver"} {
		id, _ := n.latest(pod, pod)
		ctr(t, "tasks", "kill", "-s", "SIGKILL", id)
	}
	eventually(t, 30*time.Second, "both containers gone", func() bool {
		return n.runningAttempt("etcd", "etcd") == -1 && n.runningAttempt("apiserver", "apiserver") == -1
	})
	n.start()
	eventually(t, 30*time.Second, "the apiserver-like container started again", func() bool {
		_, a := n.latest("apiserver", "apiserver")
		return a > before
	})
	if _, err := get(etcdPort, "/readyz"); err == nil {
		t.Fatal("the apiserver-like container started again only once the etcd-like server answered: " +
			"the start order was applied again after a restart of mirrorlet")
	}
	if reason, _ := n.waitingFor("apiserver", "apiserver"); reason == staticpod.ReasonWaitingForDependencies {
		t.Fatal("the apiserver-like pod waits for its dependencies again after a restart of mirrorlet")
	}
}

// killPod kills every container of the pod's newest sandbox, then its
// sandbox (pause) container, as a reboot of the node leaves them: the
// sandbox NotReady, its containers exited.
func (n *node) killPod(pod string) {
	n.t.Helper()
	p, ok := n.runtimePod(pod)
	if !ok {
		n.t.Fatalf("no runtime pod %s", pod)
	}
	for _, c := range p.Containers {
		if c.State == mruntime.ContainerRunning {
			ctr(n.t, "tasks", "kill", "-s", "SIGKILL", c.ID)
		}
	}
	ctr(n.t, "tasks", "kill", "-s", "SIGKILL", p.SandboxID)
	eventually(n.t, 30*time.Second, pod+" sandbox NotReady", func() bool {
		p, ok := n.runtimePod(pod)
		return ok && !p.Ready
	})
}

// runningAttempt returns the attempt of the running container of pod, -1 when
// it does not run.
func (n *node) runningAttempt(pod, container string) int {
	p, ok := n.runtimePod(pod)
	if !ok {
		return -1
	}
	c := p.Latest(container)
	if c == nil || c.State != mruntime.ContainerRunning {
		return -1
	}
	return int(c.Attempt)
}

// latest returns the runtime ID and attempt of the latest attempt of a
// container ("", -1 when there is none).
func (n *node) latest(pod, container string) (string, int) {
	p, ok := n.runtimePod(pod)
	if !ok {
		return "", -1
	}
	c := p.Latest(container)
	if c == nil {
		return "", -1
	}
	return c.ID, int(c.Attempt)
}

// TestStartOrderTimeout: a pod whose dependency never gets Ready waits
// mirrorlet.io/after-timeout, then starts anyway with a Warning Event.
func TestStartOrderTimeout(t *testing.T) {
	n := startNode(t)
	never := etcdLikePod(freePort(t), time.Hour)
	never.Name = "never"
	n.writeManifest("never.yaml", never)
	port := freePort(t)
	web := webPod("patient", port)
	web.Annotations = map[string]string{manifest.AnnotationAfter: "never", manifest.AnnotationAfterTimeout: "4s"}
	n.writeManifest("patient.yaml", web)

	eventually(t, time.Minute, "the mirror to say it waits for never", func() bool {
		reason, msg := n.waitingFor("patient", "web")
		return reason == staticpod.ReasonWaitingForDependencies && strings.Contains(msg, "never") && strings.Contains(msg, "4s")
	})
	waitingSeen := time.Now()
	n.waitEvent("patient", corev1.EventTypeWarning, "DependenciesNotReady", "never", "4s", "starting anyway")
	n.waitRunning("patient", time.Minute)
	if took := time.Since(waitingSeen); took < 2*time.Second {
		t.Errorf("started %s after the wait was seen: the 4s timeout was not kept", took)
	}
	if n.ready("never") {
		t.Errorf("the dependency is Ready: the test proves nothing")
	}
}

// TestStartOrderCycleIsAValidationError: mirrorlet validate refuses a
// start-order cycle and an unknown name, naming the files; on the node the
// mirrors say so (ManifestValid False) and the pods start without waiting.
func TestStartOrderCycleIsAValidationError(t *testing.T) {
	n := startNode(t)
	a, b := webPod("a", freePort(t)), webPod("b", freePort(t))
	a.Annotations = map[string]string{manifest.AnnotationAfter: "b"}
	b.Annotations = map[string]string{manifest.AnnotationAfter: "a, ghost"}
	n.writeManifest("a.yaml", a)
	n.writeManifest("b.yaml", b)

	out, err := exec.Command(binary, "validate", "--node-name", n.name, n.manifests).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("mirrorlet validate: %v, want exit 1\n%s", err, out)
	}
	fileA, fileB := filepath.Join(n.manifests, "a.yaml"), filepath.Join(n.manifests, "b.yaml")
	cycle := fmt.Sprintf("start order cycle between a (%s), b (%s)", fileA, fileB)
	for _, want := range []string{
		fileA + ": metadata.annotations[mirrorlet.io/after]: Invalid value: \"b\": " + cycle,
		fileB + ": metadata.annotations[mirrorlet.io/after]: Invalid value: \"a, ghost\": " + cycle,
		fileB + ": metadata.annotations[mirrorlet.io/after]: Invalid value: \"ghost\": no manifest defines static pod \"ghost\"",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("mirrorlet validate does not say\n  %s\nin\n%s", want, out)
		}
	}

	for _, pod := range []string{"a", "b"} {
		n.waitRunning(pod, time.Minute)
		eventually(t, 30*time.Second, pod+" mirror ManifestValid False naming the cycle", func() bool {
			m := n.mirror(pod)
			return m != nil && condition(m, podstatus.ConditionManifestValid) == corev1.ConditionFalse &&
				strings.Contains(conditionMessage(m, podstatus.ConditionManifestValid), cycle)
		})
		// The manifest loaded and runs: the message must not say that a
		// last good version runs instead.
		if msg := conditionMessage(n.mirror(pod), podstatus.ConditionManifestValid); !strings.HasPrefix(msg, "the static pod runs regardless: ") {
			t.Errorf("%s mirror's ManifestValid message %q does not say the pod runs regardless", pod, msg)
		}
	}
}

func conditionMessage(m *corev1.Pod, t corev1.PodConditionType) string {
	for _, c := range m.Status.Conditions {
		if c.Type == t {
			return c.Message
		}
	}
	return ""
}
