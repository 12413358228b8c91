package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// httpProbe is an httpGet probe. Its initial delay of 1 s lets the server
// listen first: Events of one container and reason are one series
// (events.k8s.io) that keeps the first message, so an early "connection
// refused" would hide the failure a test waits for.
func httpProbe(port intstr.IntOrString, path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: port, Path: path}},
		PeriodSeconds: period, FailureThreshold: failures, InitialDelaySeconds: 1,
	}
}

// status returns the status of the mirror's only (or named) container, or
// nil.
func containerStatus(m *corev1.Pod, name string) *corev1.ContainerStatus {
	if m == nil {
		return nil
	}
	for i := range m.Status.ContainerStatuses {
		if cs := &m.Status.ContainerStatuses[i]; cs.Name == name {
			return cs
		}
	}
	return nil
}

func condition(m *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range m.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// waitEvent waits for an Event on the mirror of pod with reason and a
// message containing every one of parts.
func (n *node) waitEvent(pod, eventType, reason string, parts ...string) {
	n.t.Helper()
	eventually(n.t, time.Minute, fmt.Sprintf("a %s Event %s %q on %s", eventType, reason, parts, n.mirrorName(pod)), func() bool {
		var events corev1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == n.mirrorName(pod) && e.Type == eventType && e.Reason == reason && containsAll(e.Message, parts) {
				return true
			}
		}
		return false
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestLivenessProbeRestartsContainer: a container whose httpGet liveness
// probe (port by name) fails failureThreshold times is killed and
// restarted, with Unhealthy and Killing Events on the mirror.
func TestLivenessProbeRestartsContainer(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	pod := webPod("liveness", port)
	probe := httpProbe(intstr.FromString("web"), "/healthz", 1, 2)
	probe.TerminationGracePeriodSeconds = ptr.To[int64](2)
	pod.Spec.Containers[0].LivenessProbe = probe
	n.writeManifest("liveness.yaml", pod)
	first := containerStatus(n.waitRunning("liveness", 2*time.Minute), "web")
	if _, err := get(port, "/sick"); err != nil {
		t.Fatal(err)
	}
	var cs *corev1.ContainerStatus
	eventually(t, 2*time.Minute, "the container restarted and ready", func() bool {
		cs = containerStatus(n.mirror("liveness"), "web")
		return cs != nil && cs.RestartCount == 1 && cs.ContainerID != first.ContainerID && cs.Ready
	})
	if cs.LastTerminationState.Terminated == nil {
		t.Errorf("no last state: %+v", cs)
	}
	answer(t, port, "/healthz") // the restarted container is healthy
	n.waitContainerEvent("liveness", "web", corev1.EventTypeWarning, "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500")
	n.waitContainerEvent("liveness", "web", corev1.EventTypeNormal, "Killing", "Container web failed liveness probe, will be restarted")
}

// TestReadinessProbeTogglesReady: a failing readiness probe makes the
// container and the pod not ready, without a restart; its success makes
// them ready again.
func TestReadinessProbeTogglesReady(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	pod := webPod("readiness", port)
	pod.Spec.Containers[0].ReadinessProbe = httpProbe(intstr.FromInt(port), "/healthz", 1, 1)
	n.writeManifest("readiness.yaml", pod)
	first := containerStatus(n.waitRunning("readiness", 2*time.Minute), "web")
	for _, step := range []struct {
		path  string
		ready bool
	}{{"/sick", false}, {"/well", true}} {
		if _, err := get(port, step.path); err != nil {
			t.Fatal(err)
		}
		want := map[bool]corev1.ConditionStatus{true: corev1.ConditionTrue, false: corev1.ConditionFalse}[step.ready]
		eventually(t, time.Minute, fmt.Sprintf("Ready %s after %s", want, step.path), func() bool {
			m := n.mirror("readiness")
			cs := containerStatus(m, "web")
			return cs != nil && cs.Ready == step.ready && condition(m, corev1.PodReady) == want &&
				condition(m, corev1.ContainersReady) == want && m.Status.Phase == corev1.PodRunning
		})
		if cs := containerStatus(n.mirror("readiness"), "web"); cs.ContainerID != first.ContainerID || cs.RestartCount != 0 {
			t.Fatalf("readiness restarted the container: %s restarts %d, was %s", cs.ContainerID, cs.RestartCount, first.ContainerID)
		}
	}
	n.waitEvent("readiness", corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500")
}

// TestStartupProbeGatesLiveness: a slow starter whose liveness probe
// would fail at once is not killed while its startup probe has not
// succeeded.
func TestStartupProbeGatesLiveness(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	pod := webPod("slowstart", port, "--start-delay", "8s")
	c := &pod.Spec.Containers[0]
	c.StartupProbe = httpProbe(intstr.FromString("web"), "/healthz", 1, 30)
	c.LivenessProbe = httpProbe(intstr.FromString("web"), "/healthz", 1, 1)
	start := time.Now()
	n.writeManifest("slowstart.yaml", pod)
	eventually(t, time.Minute, "the container running, not started", func() bool {
		cs := containerStatus(n.mirror("slowstart"), "web")
		return cs != nil && cs.State.Running != nil && cs.Started != nil && !*cs.Started && !cs.Ready
	})
	cs := containerStatus(n.waitRunning("slowstart", 2*time.Minute), "web")
	if took := time.Since(start); took < 7*time.Second {
		t.Errorf("ready after %s, before the 8s start-up delay", took)
	}
	if cs.RestartCount != 0 || cs.Started == nil || !*cs.Started {
		t.Errorf("the slow starter was restarted or is not started: %+v", cs)
	}
}

// TestExecProbeWithoutShell: an exec readiness probe runs the image's own
// binary through the runtime (the image has no shell or tools); its exit
// code drives readiness.
func TestExecProbeWithoutShell(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	pod := webPod("execprobe", port)
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
			Command: []string{"/webserver", "--probe", fmt.Sprintf("http://127.0.0.1:%d/healthz", port)}}},
		PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 5, InitialDelaySeconds: 1,
	}
	n.writeManifest("execprobe.yaml", pod)
	n.waitRunning("execprobe", 2*time.Minute)
	if _, err := get(port, "/sick"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the container not ready", func() bool {
		cs := containerStatus(n.mirror("execprobe"), "web")
		return cs != nil && !cs.Ready && cs.RestartCount == 0
	})
	n.waitEvent("execprobe", corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: probe: 500 Internal Server Error")
}

// TestProbeTimeoutIsFailure: a probe answered after its timeoutSeconds
// fails; the same answer within a longer timeout succeeds. An exec probe
// that runs past its timeout is killed by the runtime and fails.
func TestProbeTimeoutIsFailure(t *testing.T) {
	n := startNode(t)
	patientPort, impatientPort, execPort := freePort(t), freePort(t), freePort(t)
	pod := webPod("timeouts", patientPort)
	patient := &pod.Spec.Containers[0]
	patient.Name = "patient"
	patient.ReadinessProbe = httpProbe(intstr.FromInt(patientPort), "/sleep?d=2s", 3, 1)
	patient.ReadinessProbe.TimeoutSeconds = 5
	impatient := patient.DeepCopy()
	impatient.Name = "impatient"
	impatient.Args = []string{"--port", fmt.Sprint(impatientPort)}
	impatient.Ports = []corev1.ContainerPort{{Name: "impatient", ContainerPort: int32(impatientPort)}}
	impatient.ReadinessProbe = httpProbe(intstr.FromInt(impatientPort), "/sleep?d=2s", 3, 1)
	impatient.ReadinessProbe.TimeoutSeconds = 1
	pod.Spec.Containers = append(pod.Spec.Containers, *impatient)
	n.writeManifest("timeouts.yaml", pod)

	// Another pod, so that its Unhealthy Events are not folded into the
	// first pod's series.
	execPod := webPod("exec-timeout", execPort)
	execCmd := []string{"/webserver", "--probe", fmt.Sprintf("http://127.0.0.1:%d/sleep?d=4s", execPort)}
	execPod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: execCmd}},
		PeriodSeconds: 3, FailureThreshold: 1, TimeoutSeconds: 1, InitialDelaySeconds: 1,
	}
	n.writeManifest("exec-timeout.yaml", execPod)

	eventually(t, 2*time.Minute, "the patient container ready", func() bool {
		return ptr.Deref(containerStatus(n.mirror("timeouts"), "patient"), corev1.ContainerStatus{}).Ready
	})
	n.waitEvent("timeouts", corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed:", fmt.Sprintf(":%d/sleep", impatientPort), "deadline exceeded")
	n.waitEvent("exec-timeout", corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("Readiness probe failed: command %q timed out", strings.Join(execCmd, " ")))
	m := n.mirror("timeouts")
	if cs := containerStatus(m, "impatient"); cs == nil || cs.Ready || cs.State.Running == nil {
		t.Errorf("impatient container: %+v", cs)
	}
	if condition(m, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("pod Ready %s with a container not ready", condition(m, corev1.PodReady))
	}
	if cs := containerStatus(n.mirror("exec-timeout"), "web"); cs == nil || cs.Ready || cs.State.Running == nil {
		t.Errorf("slow exec container: %+v", cs)
	}
}
