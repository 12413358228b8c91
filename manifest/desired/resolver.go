package desired

import "github.com/mirrorlet/mirrorlet/manifest"

// Resolver chooses which version of a static pod runs: the one its source
// provides, or another version of the same pod (an earlier revision, while
// a rollback pins it).
type Resolver interface {
	// Resolve returns the pod to run for sp, the version its source
	// provides: sp itself, a copy (with annotations added), or another
	// version with the same key. The set calls it under its lock at every
	// merge, for every source pod: it must not call the Set, and it must
	// return the same pointer for the same sp until its choice changes
	// (the set tells subscribers of every pointer that changes).
	Resolve(sp *manifest.StaticPod) *manifest.StaticPod
}

// SetResolver makes r choose the version of every pod from the next merge
// on; call it before the first Update. Call Refresh when r's choice
// changes.
func (s *Set) SetResolver(r Resolver) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolver = r
}

func (s *Set) resolve(sp *manifest.StaticPod) *manifest.StaticPod {
	if s.resolver == nil {
		return sp
	}
	if out := s.resolver.Resolve(sp); out != nil && out.Key() == sp.Key() {
		return out
	}
	return sp
}
