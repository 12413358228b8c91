package desired

import (
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// Problem is a manifest that could not be loaded, or (VersionRuns) a part
// of a loaded one that is ignored. Key is set when the problem belongs to
// a known static pod (its last good version keeps running, or, with
// VersionRuns, its manifest's version runs); otherwise it is empty.
type Problem struct {
	Key    types.NamespacedName
	Origin string
	Err    error
	// Refused names the pod a manifest defines that was refused for a name
	// or host port another manifest holds; empty otherwise.
	Refused types.NamespacedName
	// VersionRuns is true when the manifest's own version runs regardless
	// and only what the problem names is ignored (a start-order name no
	// manifest defines, a cycle); false when the manifest's version does
	// not run (its last good version, if any, does).
	VersionRuns bool
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
	// running holds the hashes of the pods the runtime ran when mirrorlet
	// started: they hold their names and host ports from the first merge.
	running map[string]bool
	// mergedSynced is true when the last merge had every source: until
	// then a merge is provisional and holds no name against a later one.
	mergedSynced bool
	// resolver, if set, chooses the version of each source pod to run.
	resolver Resolver
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

// SetRunning tells the set which pod versions (by hash) the runtime already
// runs, before the sources publish: after a restart, a pod that was running
// keeps its name and host ports against a manifest added meanwhile.
func (s *Set) SetRunning(hashes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = map[string]bool{}
	for _, h := range hashes {
		s.running[h] = true
	}
}

// Refresh merges the sources again and notifies subscribers of every key
// whose pod changed: the resolver's choice changed.
func (s *Set) Refresh() {
	s.mu.Lock()
	changed, subs := s.remergeLocked()
	s.mu.Unlock()
	notify(changed, subs)
}

// Update replaces what source provides and notifies subscribers of every key
// whose pod or problems changed.
func (s *Set) Update(source string, snap Snapshot) {
	s.mu.Lock()
	s.snapshots[source] = snap
	changed, subs := s.remergeLocked()
	s.mu.Unlock()
	notify(changed, subs)
}

// remergeLocked merges the snapshots and returns the keys that changed
// and the subscribers to tell. Callers hold s.mu.
func (s *Set) remergeLocked() ([]types.NamespacedName, []func(types.NamespacedName)) {
	oldMerged, oldProblems := s.merged, s.problems
	s.merged, s.problems = s.merge()
	s.mergedSynced = s.syncedLocked()
	if s.mergedSynced {
		s.running = nil // from now on the last merge says who holds what
	}
	changed := changedKeys(oldMerged, s.merged, oldProblems, s.problems)
	subs := make([]func(types.NamespacedName), 0, len(s.subscribers))
	for _, fn := range s.subscribers {
		subs = append(subs, fn)
	}
	return changed, subs
}

func notify(keys []types.NamespacedName, subs []func(types.NamespacedName)) {
	for _, key := range keys {
		for _, fn := range subs {
			fn(key)
		}
	}
}

// merge builds the desired set from every snapshot. A pod whose name or
// host port is already taken is refused with a Problem naming both
// manifests; who takes it first:
//  1. the pods that hold their name already (the same manifest provided it
//     in the last merge, or, at start, the runtime runs that very version),
//     so that a new manifest never displaces a running pod. A holder's new
//     version that clashes keeps its old version running, with the problem
//     on its mirror, as a bad edit does;
//  2. then the new pods, sources in priority order and each source's pods
//     in their (sorted) order: order only breaks ties between new pods.
func (s *Set) merge() (map[types.NamespacedName]*manifest.StaticPod, map[types.NamespacedName][]Problem) {
	merged := map[types.NamespacedName]*manifest.StaticPod{}
	problems := map[types.NamespacedName][]Problem{}
	ports := map[hostPort]*manifest.StaticPod{}
	refuse := func(key types.NamespacedName, sp *manifest.StaticPod, err error) {
		problems[key] = append(problems[key], Problem{Key: key, Origin: sp.Origin, Err: err, Refused: sp.Key()})
	}
	var newcomers []*manifest.StaticPod
	for _, src := range s.sources {
		snap := s.snapshots[src]
		for _, sp := range snap.Pods {
			sp = s.resolve(sp)
			old, holds := s.holder(sp)
			if !holds {
				newcomers = append(newcomers, sp)
				continue
			}
			err := claim(merged, ports, sp)
			if err != nil && old != nil && old != sp && claim(merged, ports, old) == nil {
				refuse(sp.Key(), sp, err) // the old version keeps running
			} else if err != nil {
				refuse(types.NamespacedName{}, sp, err)
			}
		}
		for _, p := range snap.Problems {
			problems[p.Key] = append(problems[p.Key], p)
		}
	}
	for _, sp := range newcomers {
		if err := claim(merged, ports, sp); err != nil {
			refuse(types.NamespacedName{}, sp, err)
		}
	}
	addOrderProblems(merged, problems, s.problems)
	return merged, problems
}

// holder reports whether sp's manifest holds its name already, with the
// version merged last (nil at start, when the runtime's running version is
// what holds it).
func (s *Set) holder(sp *manifest.StaticPod) (*manifest.StaticPod, bool) {
	if old, ok := s.merged[sp.Key()]; ok && s.mergedSynced {
		return old, old.Source == sp.Source && old.Origin == sp.Origin
	}
	return nil, s.running[sp.Hash]
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
	return s.syncedLocked()
}

func (s *Set) syncedLocked() bool {
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
