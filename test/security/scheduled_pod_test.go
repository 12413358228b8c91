package security

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/controllers/scheduledpod"
)

// TestAgentRejectsScheduledPodOnlyOnItsNode: the agent, as
// mirrorlet:node:<n> under deploy/'s RBAC and policies, sets a pod bound
// to its node (not a mirror) Failed with an Event. That is all it may do
// to such pods: not set them to another phase, not edit them, not touch
// the status of pods bound to another node, not write a rejection Event
// related to another node.
func TestAgentRejectsScheduledPodOnlyOnItsNode(t *testing.T) {
	ctx := t.Context()
	a := startAgent(t, newNodeName("reject"))
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitMirror("web", isRunning)

	// Named unlike a mirror (<pod>-<node>), which the policy tells by name.
	pod := boundPod(newNodeName("daemon"), a.Node)
	if err := admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bound pod Failed", func() bool {
		return admin.Get(ctx, client.ObjectKeyFromObject(pod), pod) == nil && pod.Status.Phase == corev1.PodFailed
	})
	if pod.Status.Reason != scheduledpod.Reason || !strings.Contains(pod.Status.Message, "node.mirrorlet.io/agent") {
		t.Errorf("status %q %q, want %s naming the node label", pod.Status.Reason, pod.Status.Message, scheduledpod.Reason)
	}
	eventually(t, "the rejection Event", func() bool {
		var list eventsv1.EventList
		if err := admin.List(ctx, &list, client.InNamespace("default")); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.Name == pod.Name && e.Reason == scheduledpod.Reason && e.Related != nil && e.Related.Name == a.Node {
				return true
			}
		}
		return false
	})
	if _, runs := a.RuntimePod(pod.Name); runs {
		t.Errorf("the bound pod runs on the node")
	}

	c := agentClient(t, a.Node)
	notMirror := "may only write mirror pods (annotation kubernetes.io/config.mirror) of node " + a.Node
	refused(t, "phase Running on its node's pod", patchStatus(ctx, c, pod, `{"status":{"phase":"Running"}}`), notMirror)
	refused(t, "label on its node's pod", patch(ctx, c, pod, `{"metadata":{"labels":{"x":"y"}}}`), notMirror)

	other := boundPod(newNodeName("daemon"), "other-"+a.Node)
	if err := admin.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	refused(t, "Failed on another node's pod", patchStatus(ctx, c, other, `{"status":{"phase":"Failed"}}`),
		"may only write pods bound to node "+a.Node)

	ev := event(a.Node, "Pod", "default", other.Name)
	ev.Reason = scheduledpod.Reason
	ev.Related = &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: "other-" + a.Node}
	refused(t, "rejection Event related to another node", c.Create(ctx, ev), "may only write Events about Node "+a.Node)
	ev = event(a.Node, "Pod", "default", pod.Name)
	ev.Reason = "Started"
	ev.Related = &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: a.Node}
	refused(t, "another Event about a pod that is not a mirror", c.Create(ctx, ev), "may only write Events about Node "+a.Node)
}

// patchStatus merge-patches the status subresource of obj as c.
func patchStatus(ctx context.Context, c client.Client, obj client.Object, p string) error {
	return c.Status().Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType, []byte(p)))
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
