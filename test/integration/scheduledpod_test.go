package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/controllers/scheduledpod"
)

// TestScheduledPodIsRejected: a pod bound to mirrorlet's node (as the
// scheduler binds a DaemonSet's pod that tolerates every taint) ends
// Failed with a reason and a message naming the node label for affinity,
// with an Event, and never runs; the static pod's mirror is untouched.
func TestScheduledPodIsRejected(t *testing.T) {
	ctx := context.Background()
	a := startAgent(t, newNodeName("scheduled"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)

	pod := boundPod("ds-pod", a.Node)
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), pod) })
	eventually(t, "the bound pod Failed", func() bool {
		return k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod) == nil && pod.Status.Phase == corev1.PodFailed
	})
	if pod.Status.Reason != scheduledpod.Reason || !strings.Contains(pod.Status.Message, "node.mirrorlet.io/agent") ||
		!strings.Contains(pod.Status.Message, "static pods only") {
		t.Errorf("status reason %q message %q; want %s and the node label to use", pod.Status.Reason, pod.Status.Message, scheduledpod.Reason)
	}
	if pod.Status.ObservedGeneration != pod.Generation {
		t.Errorf("observedGeneration %d, want %d", pod.Status.ObservedGeneration, pod.Generation)
	}
	eventually(t, "an Event on the bound pod", func() bool {
		var list eventsv1.EventList
		if err := k8s.List(ctx, &list, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "Pod" && e.Regarding.Name == pod.Name && e.Regarding.UID == pod.UID &&
				e.Reason == scheduledpod.Reason && e.Type == corev1.EventTypeWarning {
				return true
			}
		}
		return false
	})
	consistently(t, "the bound pod never runs and the mirror is untouched", 2*time.Second, func() bool {
		_, runs := a.RuntimePod("ds-pod")
		got := &corev1.Pod{}
		return !runs && len(a.RT.Pods()) == 1 && k8s.Get(ctx, a.Key("web"), got) == nil && got.UID == m.UID && isRunning(got)
	})
}

// boundPod is a pod bound to node that tolerates every taint, like a
// DaemonSet's.
func boundPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:    node,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:  []corev1.Container{{Name: "agent", Image: "agent:1"}},
		},
	}
}
