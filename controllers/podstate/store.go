package podstate

import (
	"maps"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/runtime"
)

// Waiting says why a container that should run is not running.
type Waiting struct {
	// Reason is CamelCase, as in container status: ContainerCreating,
	// PodInitializing, CrashLoopBackOff, ErrImagePull, ImagePullBackOff,
	// CreateContainerError, WaitingForDependencies.
	Reason  string
	Message string
}

// WaitingForDependencies is the waiting reason of the containers of a new
// sandbox held back until the static pods their manifest names
// (mirrorlet.io/after) are Ready: they have not run yet, through no fault
// of their own.
const WaitingForDependencies = "WaitingForDependencies"

// State is what runs on the node for one static pod.
type State struct {
	// UID is the static pod version this state belongs to.
	UID types.UID
	// Pod is the runtime pod of that version; nil while none exists.
	Pod *runtime.Pod
	// Waiting holds, by container name, why a container is not running.
	Waiting map[string]Waiting
	// Message is a pod-level problem (the sandbox could not be created).
	Message string
	// Probes holds what the probes say of each running container attempt,
	// by container ID; nil when no prober runs (a running container then
	// counts as started and ready).
	Probes map[string]Probe
}

// Probe is what the probes say about one running container attempt.
type Probe struct {
	Started bool
	Ready   bool
	// Pending: a startup or readiness probe has no result yet for this
	// attempt; Started and Ready are initial values, and what the mirror
	// showed for this same attempt still holds.
	Pending bool
}

// Store holds the latest State of every static pod. Safe for concurrent use.
type Store struct {
	mu          sync.RWMutex
	states      map[types.NamespacedName]State
	subscribers map[int]func(types.NamespacedName)
	nextID      int
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{states: map[types.NamespacedName]State{}, subscribers: map[int]func(types.NamespacedName){}}
}

// Set records the state of key and notifies subscribers if it changed.
// The store keeps st as given: the caller must not modify it afterwards.
func (s *Store) Set(key types.NamespacedName, st State) {
	s.mu.Lock()
	old, had := s.states[key]
	s.states[key] = st
	if had && old.Equal(&st) {
		s.mu.Unlock()
		return
	}
	subs := s.subscriberList()
	s.mu.Unlock()
	for _, fn := range subs {
		fn(key)
	}
}

// Equal reports whether s and o are the same state: every field, the
// runtime pod by runtime.Pod.Equal; a nil map differs from an empty one
// (nil Probes: no prober runs).
func (s *State) Equal(o *State) bool {
	return s.UID == o.UID && s.Message == o.Message && s.Pod.Equal(o.Pod) &&
		(s.Waiting == nil) == (o.Waiting == nil) && maps.Equal(s.Waiting, o.Waiting) &&
		(s.Probes == nil) == (o.Probes == nil) && maps.Equal(s.Probes, o.Probes)
}

// Delete forgets key and notifies subscribers if it was known.
func (s *Store) Delete(key types.NamespacedName) {
	s.mu.Lock()
	_, had := s.states[key]
	delete(s.states, key)
	subs := s.subscriberList()
	s.mu.Unlock()
	if had {
		for _, fn := range subs {
			fn(key)
		}
	}
}

// Get returns the state of key. The result must not be modified.
func (s *Store) Get(key types.NamespacedName) (State, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.states[key]
	return st, ok
}

// Keys returns every key with a state.
func (s *Store) Keys() []types.NamespacedName {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := make([]types.NamespacedName, 0, len(s.states))
	for k := range s.states {
		keys = append(keys, k)
	}
	return keys
}

// Subscribe calls fn with every key whose state changes from now on. fn must
// not block. The returned function ends the subscription.
func (s *Store) Subscribe(fn func(types.NamespacedName)) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID
	s.nextID++
	s.subscribers[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subscribers, id)
	}
}

func (s *Store) subscriberList() []func(types.NamespacedName) {
	out := make([]func(types.NamespacedName), 0, len(s.subscribers))
	for _, fn := range s.subscribers {
		out = append(out, fn)
	}
	return out
}
