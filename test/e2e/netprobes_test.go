package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// waitContainerEvent waits for an Event on the mirror of pod about
// container (fieldPath spec.containers{container}, as the kubelet records
// it) with reason and a message containing every one of parts.
func (n *node) waitContainerEvent(pod, container, eventType, reason string, parts ...string) {
	n.t.Helper()
	fieldPath := "spec.containers{" + container + "}"
	what := fmt.Sprintf("a %s Event %s %q on %s %s", eventType, reason, parts, n.mirrorName(pod), fieldPath)
	var seen []string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		var events corev1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace("default")); err != nil {
			return false, nil //nolint:nilerr // the API may fail for a moment: poll again
		}
		seen = seen[:0]
		for _, e := range events.Items {
			if e.InvolvedObject.Name != n.mirrorName(pod) || e.Reason != reason {
				continue
			}
			seen = append(seen, fmt.Sprintf("%s %q", e.InvolvedObject.FieldPath, e.Message))
			if e.InvolvedObject.FieldPath == fieldPath && e.Type == eventType && containsAll(e.Message, parts) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		n.t.Fatalf("timed out waiting for %s; %s Events of the pod: %q", what, reason, seen)
	}
}

// TestTCPSocketAndGRPCProbes: a tcpSocket readiness probe (port by name)
// and a grpc one (grpc.health.v1) drive two containers' readiness: the
// server sick (TCP port closed, NOT_SERVING) makes each not ready without a
// restart, well makes them ready again. Each container's failures are an
// Unhealthy Event of its own (fieldPath spec.containers{name}), not folded
// into the other container's series.
func TestTCPSocketAndGRPCProbes(t *testing.T) {
	n := startNode(t)
	tcpWeb, tcpPort, grpcWeb, grpcPort := freePort(t), freePort(t), freePort(t), freePort(t)
	pod := webPod("netprobes", tcpWeb, "--tcp-port", fmt.Sprint(tcpPort))
	tcp := &pod.Spec.Containers[0]
	tcp.Name = "tcp"
	tcp.Ports = append(tcp.Ports, corev1.ContainerPort{Name: "tcp", ContainerPort: int32(tcpPort)})
	tcp.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("tcp")}},
		PeriodSeconds: 1, FailureThreshold: 1, InitialDelaySeconds: 1,
	}
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
		Name: "grpc", Image: registry.Ref("webserver"),
		Args:  []string{"--port", fmt.Sprint(grpcWeb), "--grpc-port", fmt.Sprint(grpcPort)},
		Ports: []corev1.ContainerPort{{Name: "web2", ContainerPort: int32(grpcWeb)}, {Name: "grpc", ContainerPort: int32(grpcPort)}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(grpcPort)}},
			PeriodSeconds: 1, FailureThreshold: 1, InitialDelaySeconds: 1,
		},
	})
	n.writeManifest("netprobes.yaml", pod)
	first := n.waitRunning("netprobes", 2*time.Minute)
	ids := map[string]string{}
	for _, cs := range first.Status.ContainerStatuses {
		ids[cs.Name] = cs.ContainerID
	}
	for _, step := range []struct {
		path  string
		ready bool
	}{{"/sick", false}, {"/well", true}} {
		for _, port := range []int{tcpWeb, grpcWeb} {
			answer(t, port, step.path)
		}
		want := map[bool]corev1.ConditionStatus{true: corev1.ConditionTrue, false: corev1.ConditionFalse}[step.ready]
		eventually(t, time.Minute, fmt.Sprintf("both containers ready=%t after %s", step.ready, step.path), func() bool {
			m := n.mirror("netprobes")
			tcs, gcs := containerStatus(m, "tcp"), containerStatus(m, "grpc")
			return tcs != nil && gcs != nil && tcs.Ready == step.ready && gcs.Ready == step.ready &&
				condition(m, corev1.PodReady) == want && m.Status.Phase == corev1.PodRunning
		})
		for _, cs := range n.mirror("netprobes").Status.ContainerStatuses {
			if cs.ContainerID != ids[cs.Name] || cs.RestartCount != 0 {
				t.Fatalf("readiness restarted container %s: %s restarts %d, was %s", cs.Name, cs.ContainerID, cs.RestartCount, ids[cs.Name])
			}
		}
		if !step.ready {
			// A series keeps its first message: a failure before the server
			// listened (a loaded node) would be the one shown, so only the
			// container's own failure is asked for here.
			n.waitContainerEvent("netprobes", "tcp", corev1.EventTypeWarning, "Unhealthy",
				"Readiness probe failed: dial tcp ", fmt.Sprintf(":%d: connect: connection refused", tcpPort))
			n.waitContainerEvent("netprobes", "grpc", corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: ")
		}
	}
}
