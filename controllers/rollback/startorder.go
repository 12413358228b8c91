package rollback

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
)

// orderWait is what the controller saw of a revision whose containers
// waited for its start order (mirrorlet.io/after): they did not run,
// through no fault of the revision's, so its window counts from when the
// wait ended.
type orderWait struct {
	hash string
	// released is when the wait was seen to end; zero while it lasts.
	released time.Time
}

// orderWaits holds, by pod, the last revision seen waiting for its start
// order.
type orderWaits struct {
	mu    sync.Mutex
	waits map[types.NamespacedName]orderWait
}

// waitsForStartOrder reports whether the revision hash of key waits for
// its start order now (a container waiting with reason
// podstate.WaitingForDependencies), and records when it stops waiting.
func (o *orderWaits) waitsForStartOrder(key types.NamespacedName, hash string, st corev1.PodStatus, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waits == nil {
		o.waits = map[types.NamespacedName]orderWait{}
	}
	w, seen := o.waits[key]
	if waitingForDependencies(st) {
		o.waits[key] = orderWait{hash: hash}
		return true
	}
	if seen && w.hash == hash && w.released.IsZero() {
		w.released = now
		o.waits[key] = w
	}
	return false
}

// releasedAt is when the revision hash of key stopped waiting for its
// start order; zero when it was not seen waiting.
func (o *orderWaits) releasedAt(key types.NamespacedName, hash string) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if w, ok := o.waits[key]; ok && w.hash == hash {
		return w.released
	}
	return time.Time{}
}

// waiting reports whether a revision of key is seen waiting now.
func (o *orderWaits) waiting(key types.NamespacedName) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.waits[key]
	return ok && w.released.IsZero()
}

func (o *orderWaits) forget(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.waits, key)
}

func waitingForDependencies(st corev1.PodStatus) bool {
	for _, cs := range append(st.InitContainerStatuses, st.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Reason == podstate.WaitingForDependencies {
			return true
		}
	}
	return false
}
