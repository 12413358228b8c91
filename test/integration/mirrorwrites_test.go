package integration

import (
	"context"
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestMirrorWrittenOnceEach: a new mirror costs one apply, and a mirror
// deleted (forced or gracefully) and brought back one apply and one
// status write (a graceful delete also the delete of the terminating
// mirror):
// the reconciles woken by mirrorlet's own writes, which run before the
// cache has them, write nothing again. The API server resets a new pod's
// status, so a mirror with its status takes two writes.
func TestMirrorWrittenOnceEach(t *testing.T) {
	writes, counting := countPodWrites(t)
	a := startAgent(t, newNodeName("written-once"), "", nil, counting)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.WaitMirror("web", isSettled)
	checkNoWrites(t, writes, writeWindow/2, "after the mirror is Running")
	// The status may be written twice: Pending, then Running.
	if got := writes.snapshot(); got["PATCH pods"] != 1 || got["DELETE pods"] != 0 || got["POST pods"] != 0 {
		t.Errorf("new mirror: pod writes %v, want one apply", got)
	}
	for _, tc := range []struct {
		name  string
		grace *int64
		// deletes: a graceful delete leaves a terminating mirror that
		// mirrorlet deletes; a forced one may be seen terminating too.
		deletes []int
	}{
		{"forced", ptrTo[int64](0), []int{0, 1}},
		{"graceful", nil, []int{1}},
	} {
		before := writes.snapshot()
		if err := k8s.Delete(context.Background(), m, &client.DeleteOptions{GracePeriodSeconds: tc.grace}); err != nil {
			t.Fatal(err)
		}
		old := m
		m = a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID != old.UID && isSettled(p) })
		checkNoWrites(t, writes, writeWindow/2, "after the mirror is back")
		after := writes.snapshot()
		applies, statuses := after["PATCH pods"]-before["PATCH pods"], after["PATCH pods/status"]-before["PATCH pods/status"]
		deletes := after["DELETE pods"] - before["DELETE pods"]
		if applies != 1 || statuses != 1 || !slices.Contains(tc.deletes, deletes) {
			t.Errorf("%s delete: mirror back with %d applies, %d status writes, %d deletes; want 1, 1, %v",
				tc.name, applies, statuses, deletes, tc.deletes)
		}
	}
}

// snapshot returns the counts so far.
func (w *podWrites) snapshot() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.counts)
}
