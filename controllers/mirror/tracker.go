package mirror

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// MirrorState is what the mirror reconciler last did for one static pod.
type MirrorState struct {
	// UID of the mirror pod; empty while there is none.
	UID types.UID
	// Error is the last error writing the mirror; empty after a success.
	Error string
	// Rejected is true when the API server refused the mirror (admission,
	// validation, quota): the static pod keeps running regardless.
	Rejected bool
	// NameTaken is true when another pod holds the mirror's name (a pod
	// that is not this node's mirror): the static pod runs without one.
	NameTaken bool
}

// Tracker records the mirror state of every static pod, for `mirrorlet
// status` (which needs no API server). Safe for concurrent use.
type Tracker struct {
	mu     sync.RWMutex
	states map[types.NamespacedName]MirrorState
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{states: map[types.NamespacedName]MirrorState{}}
}

// Get returns the mirror state of key.
func (t *Tracker) Get(key types.NamespacedName) (MirrorState, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.states[key]
	return s, ok
}

// set records the state of key and returns the previous one.
func (t *Tracker) set(key types.NamespacedName, s MirrorState) MirrorState {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.states[key]
	t.states[key] = s
	return old
}

func (t *Tracker) forget(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.states, key)
}
