package cluster

import (
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// TestNodeDeletedComesBackWithItsMirrors deletes the Node of a running
// mirrorlet as an admin would (kubectl delete node: background
// propagation). The real garbage collector deletes the mirrors through
// their ownerReference to the Node; mirrorlet registers the Node again and
// recreates every mirror, owned by the new Node; no container restarts
// and no sandbox is replaced (issue 13 point 4, issue 12 fault 6).
func TestNodeDeletedComesBackWithItsMirrors(t *testing.T) {
	n := startNode(t, "", false)
	pods := []string{"gc-a", "gc-b"}
	for _, p := range pods {
		n.WriteManifest(p+".yaml", webPod(p))
	}
	before := waitMirrorsRunning(t, n, 2*time.Minute, pods...)
	sandboxesBefore := sandboxes(n)
	old := &corev1.Node{}
	if err := admin.Get(t.Context(), client.ObjectKey{Name: n.Name()}, old); err != nil {
		t.Fatal(err)
	}

	if err := admin.Delete(t.Context(), old, client.PropagationPolicy("Background")); err != nil {
		t.Fatal(err)
	}
	var node corev1.Node
	nodetest.Eventually(t, time.Minute, "the Node registered again", func() bool {
		return admin.Get(t.Context(), client.ObjectKey{Name: n.Name()}, &node) == nil && node.UID != old.UID
	})
	after := waitMirrorsOwnedBy(t, n, &node, pods...)
	for _, p := range pods {
		if !maps.Equal(containers(t, before[p]), containers(t, after[p])) {
			t.Errorf("%s: containers %v before the Node's deletion, %v after", p,
				containers(t, before[p]), containers(t, after[p]))
		}
		// The cascade: the garbage collector deleted the mirror first
		// (mirrorlet may then delete it at once, without grace, to
		// recreate it).
		who := deleters(t, "pods", "default", before[p].Name)
		t.Logf("mirror %s: UID %s -> %s, deleted by %v", before[p].Name, before[p].UID, after[p].UID, who)
		if len(who) == 0 || who[0] != kcmUser || after[p].UID == before[p].UID {
			t.Errorf("mirror %s was not deleted by the garbage collector (%s) first: deleted by %v", before[p].Name, kcmUser, who)
		}
	}
	if got := sandboxes(n); !maps.Equal(got, sandboxesBefore) {
		t.Errorf("sandboxes %v before the Node's deletion, %v after", sandboxesBefore, got)
	}
}

// waitMirrorsOwnedBy waits until the mirrors of pods on n are Running and
// owned by node (its UID), and returns them by static pod name.
func waitMirrorsOwnedBy(t *testing.T, n *nodetest.Mirrorlet, node *corev1.Node, pods ...string) map[string]*corev1.Pod {
	t.Helper()
	out := map[string]*corev1.Pod{}
	nodetest.Eventually(t, time.Minute, "every mirror Running and owned by the new Node", func() bool {
		for _, name := range pods {
			m := getPod(t, "default", name+"-"+n.Name())
			if !running(m) || len(m.OwnerReferences) != 1 || m.OwnerReferences[0].UID != node.UID {
				return false
			}
			out[name] = m
		}
		return true
	})
	return out
}
