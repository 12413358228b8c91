package cluster

import (
	"maps"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// TestNodeDeletedWhileMirrorletIsDown deletes the Node of a stopped
// mirrorlet as an admin (or a cloud's node lifecycle controller) would,
// with background propagation. The real garbage collector deletes every
// mirror through its ownerReference to the Node (the audit log says who);
// started again, mirrorlet registers a new Node and replaces every mirror
// (still Terminating, or gone) by one owned by it; no container restarts and no sandbox is replaced (issue 13
// point 4, issue 12 fault 6).
func TestNodeDeletedWhileMirrorletIsDown(t *testing.T) {
	n, pods, before, sandboxesBefore := startGCNode(t)
	n.Stop(syscall.SIGTERM)
	old := deleteNodeAsAdmin(t, n.Name())
	// The garbage collector deletes with the pods' grace period: with
	// nobody on the node to finish it, a mirror stays Terminating until
	// mirrorlet is back (or pod GC force-deletes pods of a missing Node
	// after 40 s).
	nodetest.Eventually(t, time.Minute, "the garbage collector deleting every mirror", func() bool {
		for _, p := range pods {
			if m := getPod(t, "default", before[p].Name); m != nil && m.DeletionTimestamp == nil {
				return false
			}
		}
		return true
	})
	for _, p := range pods {
		if who := deleters(t, "pods", "default", before[p].Name); len(who) == 0 || who[0] != kcmUser {
			t.Errorf("mirror %s deleted by %v, want the garbage collector (%s)", before[p].Name, who, kcmUser)
		}
	}

	n.Start()
	after := waitNodeBack(t, n, old, pods)
	checkSameContainers(t, n, pods, before, after, sandboxesBefore)
}

// TestNodeDeletedWhileMirrorletRuns deletes the Node of a running
// mirrorlet. mirrorlet registers it again at once; each mirror is then
// either deleted by the garbage collector and recreated, or, when
// mirrorlet re-owns it first, kept: both happen, depending on who is
// faster. Either way every mirror ends Running, owned by the new Node, with
// the same containers, and nobody but the garbage collector deletes a
// mirror first.
func TestNodeDeletedWhileMirrorletRuns(t *testing.T) {
	n, pods, before, sandboxesBefore := startGCNode(t)
	old := deleteNodeAsAdmin(t, n.Name())
	after := waitNodeBack(t, n, old, pods)
	checkSameContainers(t, n, pods, before, after, sandboxesBefore)
	for _, p := range pods {
		who := deleters(t, "pods", "default", before[p].Name)
		t.Logf("mirror %s: UID %s -> %s, deleted by %v", before[p].Name, before[p].UID, after[p].UID, who)
		if len(who) > 0 && who[0] != kcmUser || len(who) == 0 && after[p].UID != before[p].UID {
			t.Errorf("mirror %s deleted by %v (UID %s -> %s), want the garbage collector first or nobody",
				before[p].Name, who, before[p].UID, after[p].UID)
		}
	}
}

// startGCNode starts mirrorlet with two static pods and returns it, the
// pods, their Running mirrors and the runtime's sandboxes.
func startGCNode(t *testing.T) (*nodetest.Mirrorlet, []string, map[string]*corev1.Pod, map[string]string) {
	t.Helper()
	n := startNode(t, "", false)
	pods := []string{"gc-a", "gc-b"}
	for _, p := range pods {
		n.WriteManifest(p+".yaml", webPod(p))
	}
	before := waitMirrorsRunning(t, n, 2*time.Minute, pods...)
	return n, pods, before, sandboxes(n)
}

// deleteNodeAsAdmin deletes the Node like kubectl delete node (background
// propagation) and returns it as it was.
func deleteNodeAsAdmin(t *testing.T, name string) *corev1.Node {
	t.Helper()
	old := &corev1.Node{}
	if err := admin.Get(t.Context(), client.ObjectKey{Name: name}, old); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(t.Context(), old, client.PropagationPolicy("Background")); err != nil {
		t.Fatal(err)
	}
	return old
}

// waitNodeBack waits until n's Node is registered again (a new UID) and
// every mirror of pods is Running and owned by it; it returns the mirrors.
func waitNodeBack(t *testing.T, n *nodetest.Mirrorlet, old *corev1.Node, pods []string) map[string]*corev1.Pod {
	t.Helper()
	var node corev1.Node
	nodetest.Eventually(t, time.Minute, "the Node registered again", func() bool {
		return admin.Get(t.Context(), client.ObjectKey{Name: n.Name()}, &node) == nil && node.UID != old.UID
	})
	out := map[string]*corev1.Pod{}
	nodetest.Eventually(t, time.Minute, "every mirror Running and owned by the new Node", func() bool {
		for _, name := range pods {
			m := getPod(t, "default", name+"-"+n.Name())
			if !running(m) || m.DeletionTimestamp != nil || len(m.OwnerReferences) != 1 || m.OwnerReferences[0].UID != node.UID {
				return false
			}
			out[name] = m
		}
		return true
	})
	return out
}

// checkSameContainers checks that the static pods kept their containers
// (no restart) and sandboxes.
func checkSameContainers(t *testing.T, n *nodetest.Mirrorlet, pods []string, before, after map[string]*corev1.Pod, sandboxesBefore map[string]string) {
	t.Helper()
	for _, p := range pods {
		if b, a := containers(t, before[p]), containers(t, after[p]); !maps.Equal(b, a) {
			t.Errorf("%s: containers %v before the Node's deletion, %v after", p, b, a)
		}
	}
	if got := sandboxes(n); !maps.Equal(got, sandboxesBefore) {
		t.Errorf("sandboxes %v before the Node's deletion, %v after", sandboxesBefore, got)
	}
}

// TestNodeDeletedWithOrphanCascade deletes the Node of a stopped mirrorlet
// with --cascade=orphan. The garbage collector removes the mirrors' owner
// reference (an update that deploy/admission's read-only-mirrors policy
// must let it make, or the Node's deletion waits for ever) and the Node
// goes; the mirrors stay. Started again, mirrorlet registers the Node and
// owns the same mirrors again, without a restart.
func TestNodeDeletedWithOrphanCascade(t *testing.T) {
	n, pods, before, sandboxesBefore := startGCNode(t)
	n.Stop(syscall.SIGTERM)
	old := &corev1.Node{}
	if err := admin.Get(t.Context(), client.ObjectKey{Name: n.Name()}, old); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(t.Context(), old, client.PropagationPolicy("Orphan")); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "the Node gone and the mirrors orphaned", func() bool {
		if err := admin.Get(t.Context(), client.ObjectKey{Name: n.Name()}, &corev1.Node{}); err == nil {
			return false
		}
		for _, p := range pods {
			m := getPod(t, "default", before[p].Name)
			if m == nil || m.UID != before[p].UID || len(m.OwnerReferences) != 0 {
				return false
			}
		}
		return true
	})

	n.Start()
	after := waitNodeBack(t, n, old, pods)
	checkSameContainers(t, n, pods, before, after, sandboxesBefore)
	for _, p := range pods {
		if after[p].UID != before[p].UID {
			t.Errorf("mirror %s recreated (UID %s -> %s), want it owned again", before[p].Name, before[p].UID, after[p].UID)
		}
	}
}
