package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestMirrorOfPreviousVersionAdopted: a mirror made by a plain create as
// field manager "mirrorlet" (what the version before server-side apply
// did: its user agent named the manager) is adopted at start without a
// write of the mirror. A label later dropped from the manifest is dropped
// from the mirror (by recreating it: an apply cannot remove what the
// create owns); from then on label edits are applied in place.
func TestMirrorOfPreviousVersionAdopted(t *testing.T) {
	ctx := context.Background()
	node, dir := newNodeName("upgrade"), t.TempDir()
	first := startAgent(t, node, dir, nil)
	first.Write("web.yaml", podManifest("web", map[string]string{"role": "a", "tier": "x"}, "nginx:1.27"))
	m := first.WaitMirror("web", isRunning)
	first.Stop()

	old := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, Annotations: m.Annotations,
			OwnerReferences: m.OwnerReferences},
		Spec: m.Spec,
	}
	if err := k8s.Delete(ctx, m, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the mirror gone", func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(m), &corev1.Pod{})) })
	if err := k8s.Create(ctx, old, client.FieldOwner("mirrorlet")); err != nil {
		t.Fatal(err)
	}
	old.Status = m.Status
	if err := k8s.Status().Update(ctx, old); err != nil {
		t.Fatal(err)
	}

	writes, counting := countPodWrites(t)
	before := reconciles(t, "mirror")
	second := startAgent(t, node, dir, first.RT, counting)
	// The window opens once the new agent has looked at the mirror: on
	// a loaded machine 2 s may pass before its first reconcile.
	eventually(t, "the new agent to reconcile the mirror", func() bool { return reconciles(t, "mirror") > before })
	consistently(t, "the mirror adopted, not written", 2*time.Second, func() bool {
		got := &corev1.Pod{}
		return k8s.Get(ctx, client.ObjectKeyFromObject(old), got) == nil && got.UID == old.UID &&
			writes.Count("POST pods")+writes.Count("PATCH pods")+writes.Count("DELETE pods") == 0
	})

	second.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	recreated := second.WaitMirror("web", func(p *corev1.Pod) bool { _, tier := p.Labels["tier"]; return !tier && p.Labels["role"] == "a" })
	if recreated.UID == old.UID {
		t.Errorf("the label dropped in place from a mirror the previous version made")
	}
	second.Write("web.yaml", podManifest("web", map[string]string{"role": "b"}, "nginx:1.27"))
	got := second.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	if got.UID != recreated.UID {
		t.Errorf("a label edit recreated a mirror mirrorlet applied")
	}
	t.Logf("pod writes: %s", writes)
}

// TestRestartWritesNoMirror: after a restart, mirrorlet finds its mirror
// as it left it and writes nothing to it (config.seen, read again at
// start, is not a reason to write).
func TestRestartWritesNoMirror(t *testing.T) {
	ctx := context.Background()
	node, dir := newNodeName("restart-quiet"), t.TempDir()
	first := startAgent(t, node, dir, nil)
	first.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	m := first.WaitMirror("web", isRunning)
	first.Stop()

	writes, counting := countPodWrites(t)
	before := reconciles(t, "mirror")
	second := startAgent(t, node, dir, first.RT, counting)
	second.WaitRunning("web", 1)
	eventually(t, "the new agent to reconcile the mirror", func() bool { return reconciles(t, "mirror") > before })
	consistently(t, "the mirror kept, not written", 2*time.Second, func() bool {
		got := &corev1.Pod{}
		return k8s.Get(ctx, client.ObjectKeyFromObject(m), got) == nil && got.UID == m.UID && writes.Total() == 0
	})
}
