package integration

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

// TestRollbackEventIsOnThePinnedMirror: a rollback replaces the mirror
// (the pinned revision has another hash); its Event is recorded on the
// new mirror (involvedObject.uid, the config.mirror hash kubectl describe
// looks Events up by), not on the one it replaces.
func TestRollbackEventIsOnThePinnedMirror(t *testing.T) {
	root := t.TempDir()
	a := startAgent(t, newNodeName("pinevent"), "", nil, withRootDir(root))
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Annotations[revisions.AnnotationRevision] == "1" })
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.28"))
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Annotations[revisions.AnnotationRevision] == "2" })

	key := a.Key("web")
	dir := app.RevisionsDir(root)
	if err := revisions.WriteRequest(dir, key, revisions.Request{Key: key.String(), Revision: 1}); err != nil {
		t.Fatal(err)
	}
	m := a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.Annotations[revisions.AnnotationRevision] == "1" && p.Annotations[revisions.AnnotationPinnedReason] == revisions.ReasonManual
	})
	eventually(t, "the PinnedRevision Event on the pinned mirror", func() bool {
		var evs corev1.EventList
		if err := k8s.List(context.Background(), &evs, client.InNamespace(key.Namespace)); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == "PinnedRevision" && e.InvolvedObject.Name == key.Name {
				if uid := string(e.InvolvedObject.UID); uid != m.Annotations[manifest.AnnotationMirror] {
					t.Fatalf("PinnedRevision Event on %s, the replaced mirror's hash; the pinned mirror is %s", uid, m.Annotations[manifest.AnnotationMirror])
				}
				return true
			}
		}
		return false
	})
}
