package desired

import (
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// Problem is a manifest that could not be loaded. Key is set when the
// problem belongs to a known static pod (its last good version keeps
// running); otherwise it is empty.
type Problem struct {
	Key    types.NamespacedName
	Origin string
	Err    error
}

// Snapshot is everything one source currently provides.
type Snapshot struct {
	Pods     []*manifest.StaticPod
	Problems []Problem
}

// Set is the desired set. The zero value is not usable; call New.
type Set struct {
	mu          sync.RWMutex
	sources     []string // in priority order: earlier wins on a clash
	snapshots   map[string]Snapshot
	merged      map[types.NamespacedName]*manifest.StaticPod
	problems    map[types.NamespacedName][]Problem
	subscribers map[int]func(types.NamespacedName)
	nextID      int
}

// New returns a set fed by the named sources. On a name clash, the pod of
// the source named first wins.
func New(sources ...string) *Set {
	return &Set{
		sources:     slices.Clone(sources),
		snapshots:   map[string]Snapshot{},
		merged:      map[types.NamespacedName]*manifest.StaticPod{},
		problems:    map[types.NamespacedName][]Problem{},
		subscribers: map[int]func(types.NamespacedName){},
	}
}

// Update replaces what source provides and notifies subscribers of every key
// whose pod or problems changed.
func (s *Set) Update(source string, snap Snapshot) {
	s.mu.Lock()
	s.snapshots[source] = snap
	oldMerged, oldProblems := s.merged, s.problems
	s.merged, s.problems = s.merge()
	changed := changedKeys(oldMerged, s.merged, oldProblems, s.problems)
	subs := make([]func(types.NamespacedName), 0, len(s.subscribers))
	for _, fn := range s.subscribers {
		subs = append(subs, fn)
	}
	s.mu.Unlock()
	for _, key := range changed {
		for _, fn := range subs {
			fn(key)
		}
	}
}

// merge builds the desired set from every snapshot, sources in priority
// order and each source's pods in their order: a pod whose name or host port
// is already taken is refused with a Problem naming both manifests.
func (s *Set) merge() (map[types.NamespacedName]*manifest.StaticPod, map[types.NamespacedName][]Problem) {
	merged := map[types.NamespacedName]*manifest.StaticPod{}
	problems := map[types.NamespacedName][]Problem{}
	ports := map[hostPort]*manifest.StaticPod{}
	for _, src := range s.sources {
		snap := s.snapshots[src]
		for _, sp := range snap.Pods {
			if err := claim(merged, ports, sp); err != nil {
				problems[types.NamespacedName{}] = append(problems[types.NamespacedName{}], Problem{Origin: sp.Origin, Err: err})
			}
		}
		for _, p := range snap.Problems {
			problems[p.Key] = append(problems[p.Key], p)
		}
	}
	return merged, problems
}

type hostPort struct {
	protocol string
	port     int32
}

// claim adds sp to merged unless its name or one of its host ports is taken.
func claim(merged map[types.NamespacedName]*manifest.StaticPod, ports map[hostPort]*manifest.StaticPod, sp *manifest.StaticPod) error {
	if other, taken := merged[sp.Key()]; taken {
		return fmt.Errorf("%s: pod %s is already defined by %s (%s source)", sp.Origin, sp.Key(), other.Origin, other.Source)
	}
	wanted := hostPorts(sp)
	for _, hp := range wanted {
		if other, taken := ports[hp]; taken {
			return fmt.Errorf("%s: host port %d/%s is already used by pod %s from %s", sp.Origin, hp.port, hp.protocol, other.Key(), other.Origin)
		}
	}
	for _, hp := range wanted {
		ports[hp] = sp
	}
	merged[sp.Key()] = sp
	return nil
}

func hostPorts(sp *manifest.StaticPod) []hostPort {
	var out []hostPort
	spec := &sp.Pod.Spec
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.HostPort != 0 {
					out = append(out, hostPort{protocol: string(p.Protocol), port: p.HostPort})
				}
			}
		}
	}
	return out
}

func changedKeys(oldPods, newPods map[types.NamespacedName]*manifest.StaticPod,
	oldProblems, newProblems map[types.NamespacedName][]Problem) []types.NamespacedName {
	var keys []types.NamespacedName
	for k, sp := range newPods {
		if oldPods[k] != sp {
			keys = append(keys, k)
		}
	}
	for k := range oldPods {
		if _, ok := newPods[k]; !ok {
			keys = append(keys, k)
		}
	}
	for k, ps := range newProblems {
		if k.Name != "" && !slices.Equal(ps, oldProblems[k]) {
			keys = append(keys, k)
		}
	}
	for k := range oldProblems {
		if _, ok := newProblems[k]; !ok && k.Name != "" {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int {
		if a.Namespace != b.Namespace {
			return compare(a.Namespace, b.Namespace)
		}
		return compare(a.Name, b.Name)
	})
	return slices.Compact(keys)
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Get returns the static pod for key, if one is desired.
func (s *Set) Get(key types.NamespacedName) (*manifest.StaticPod, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sp, ok := s.merged[key]
	return sp, ok
}

// Problems returns the manifest problems of the static pod key.
func (s *Set) Problems(key types.NamespacedName) []Problem {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.problems[key])
}

// AllProblems returns every current manifest problem.
func (s *Set) AllProblems() []Problem {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Problem
	for _, ps := range s.problems {
		out = append(out, ps...)
	}
	return out
}

// List returns every desired static pod.
func (s *Set) List() []*manifest.StaticPod {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*manifest.StaticPod, 0, len(s.merged))
	for _, sp := range s.merged {
		out = append(out, sp)
	}
	return out
}

// Synced reports whether every source has published at least once.
func (s *Set) Synced() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, src := range s.sources {
		if _, ok := s.snapshots[src]; !ok {
			return false
		}
	}
	return true
}

// Subscribe calls fn with the key of every static pod that changes from now
// on, and returns a function that ends the subscription. fn must not block
// (a workqueue's Add is the intended use). Keys present before Subscribe are
// not replayed: list them with List.
func (s *Set) Subscribe(fn func(types.NamespacedName)) (cancel func()) {
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
