package security

import (
	"context"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// gcUser is the garbage collector's identity (the controller manager with
// --use-service-account-credentials), exempt from the read-only policy.
const gcUser = "system:serviceaccount:kube-system:generic-garbage-collector"

// TestAgentWorksAsItsOwnIdentity runs the whole mirror behaviour with the
// agent authenticated as mirrorlet:node:<node> under deploy/'s RBAC and
// policies: mirrors created, status written, labels patched in place, a
// deleted mirror recreated, an edit by an exempt identity reverted, Events
// written, orphans deleted, the Node registered with its status and Lease.
func TestAgentWorksAsItsOwnIdentity(t *testing.T) {
	ctx := t.Context()
	a := startAgent(t, newNodeName("own"))
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)

	node := &corev1.Node{}
	eventually(t, "node registered and Ready", func() bool {
		return admin.Get(ctx, types.NamespacedName{Name: a.Node}, node) == nil &&
			len(node.Status.Conditions) == 1 && node.Status.Conditions[0].Status == corev1.ConditionTrue
	})
	lease := &coordinationv1.Lease{}
	leaseKey := types.NamespacedName{Namespace: "kube-node-lease", Name: a.Node}
	eventually(t, "node lease created", func() bool { return admin.Get(ctx, leaseKey, lease) == nil })
	first := lease.Spec.RenewTime.DeepCopy()
	eventually(t, "node lease renewed", func() bool {
		return admin.Get(ctx, leaseKey, lease) == nil && lease.Spec.RenewTime.After(first.Time)
	})

	a.Write("web.yaml", podManifest("web", map[string]string{"role": "b"}, "nginx:1.27"))
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID == m.UID && p.Labels["role"] == "b" })

	editor := mustUserClient(t, editorName)
	if err := editor.Delete(ctx, m); err != nil {
		t.Fatalf("editor deleting the mirror: %v", err)
	}
	m = a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID != m.UID && isRunning(p) })

	gc := mustUserClient(t, gcUser, "system:serviceaccounts", "system:serviceaccounts:kube-system")
	mergePatch(t, gc, m, `{"metadata":{"labels":{"role":"edited"}}}`)
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID == m.UID && p.Labels["role"] == "b" })
	mergePatch(t, gc, m, `{"spec":{"containers":[{"name":"web","image":"nginx:9.99","ports":[{"containerPort":80}]}]}}`)
	m = a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.UID != m.UID && p.Spec.Containers[0].Image == "nginx:1.27" && isRunning(p)
	})

	a.Write("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec: {containers: [{name: web, image: nginx:1.27, bogus: 1}]}\n")
	a.Write("broken.yaml", "not a pod")
	waitEvent(t, "FailedLoadManifest on the mirror", "Pod", m.Name)
	waitEvent(t, "FailedLoadManifest on the Node", "Node", a.Node)

	a.Remove("web.yaml")
	a.WaitNoMirror("web")
}

// mergePatch applies a JSON merge patch to obj as c, failing the test if
// it is refused.
func mergePatch(t *testing.T, c client.Client, obj client.Object, patch string) {
	t.Helper()
	if err := c.Patch(t.Context(), obj.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("patching %s with %s: %v", obj.GetName(), patch, err)
	}
}

// waitEvent waits for a FailedLoadManifest events.k8s.io Event about the
// object of kind and name, which only the agent writes.
func waitEvent(t *testing.T, what, kind, name string) {
	t.Helper()
	eventually(t, what, func() bool {
		var list eventsv1.EventList
		if err := admin.List(context.Background(), &list); err != nil {
			return false
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == "FailedLoadManifest" {
				return true
			}
		}
		return false
	})
}
