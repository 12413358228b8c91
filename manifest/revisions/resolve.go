package revisions

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest"
)

type resolution struct {
	in, out *manifest.StaticPod
}

// Resolve returns the version of sp's static pod to run: sp (annotated
// with its revision number), or the pinned revision while the source
// provides the version the pin replaced. It records sp as a new revision
// when its hash is new, and ends a pin when the source provides another
// version. It implements desired.Resolver: the same sp gives the same
// pointer until a revision or pin of the pod changes. A failed disk write
// is logged: the pod runs regardless, only the history is not durable.
func (s *Store) Resolve(sp *manifest.StaticPod) *manifest.StaticPod {
	key := sp.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.resolved[key]; ok && c.in == sp {
		return c.out
	}
	h := s.histories[key]
	if h == nil {
		h = &History{Key: key.String(), Next: 1}
		s.histories[key] = h
	}
	if s.observe(h, sp) {
		if err := s.saveLater(key, h); err != nil {
			s.cfg.Log.Error(err, "Cannot save the revision history", "pod", key)
		}
	}
	out := choose(h, sp)
	s.resolved[key] = resolution{in: sp, out: out}
	return out
}

// observe records sp in h: a new revision when its hash is not the latest,
// and the end of a pin the source moved past. It reports whether h changed.
func (s *Store) observe(h *History, sp *manifest.StaticPod) bool {
	if h.Pin != nil && h.Pin.SourceHash == sp.Hash {
		return false
	}
	changed := false
	if h.Pin != nil {
		s.cfg.Log.Info("Manifest changed; the pinned revision no longer runs", "pod", h.Key,
			"pinned", h.Pin.Revision, "reason", h.Pin.Reason)
		h.Pin, changed = nil, true
	}
	if l := h.Latest(); l == nil || l.Hash != sp.Hash {
		h.add(sp, s.cfg.Clock.Now())
		h.trim(s.cfg.Limit)
		s.cfg.Log.Info("New revision", "pod", h.Key, "revision", h.Latest().Number, "hash", sp.Hash)
		changed = true
	}
	return changed
}

// add appends sp as the newest revision; an older revision of the same
// hash (the manifest went back to it) is renumbered as the new one.
func (h *History) add(sp *manifest.StaticPod, now time.Time) {
	h.Revisions = slices.DeleteFunc(h.Revisions, func(r Revision) bool { return r.Hash == sp.Hash })
	h.Revisions = append(h.Revisions, Revision{
		Number: h.Next, Hash: sp.Hash, Created: now.UTC(), Source: sp.Source, Origin: sp.Origin,
		Content: sp.Content, Pod: sp.Pod,
	})
	h.Next++
}

// choose returns the pod to run for sp given h.
func choose(h *History, sp *manifest.StaticPod) *manifest.StaticPod {
	if h.Pin != nil {
		// The pinned revision is never trimmed; without it (a hand-edited
		// file) the source's version runs.
		if r := h.Number(h.Pin.Revision); r != nil && r.Pod != nil {
			pinned := &manifest.StaticPod{Pod: r.Pod, Source: r.Source, Origin: r.Origin, Hash: r.Hash, Content: r.Content}
			return annotated(pinned, r.Number, h.Pin)
		}
	}
	var number int64
	if r := h.Find(sp.Hash); r != nil {
		number = r.Number
	}
	return annotated(sp, number, nil)
}

// annotated returns a copy of sp carrying its revision number (none for
// 0) and pin. The store owns these annotations: the manifest's own values
// (a mirror's YAML saved as a manifest) never show, so a manifest cannot
// make its pod look pinned, which would also keep it from being judged.
func annotated(sp *manifest.StaticPod, number int64, pin *Pin) *manifest.StaticPod {
	out := *sp
	out.Pod = sp.Pod.DeepCopy()
	if out.Pod.Annotations == nil {
		out.Pod.Annotations = map[string]string{}
	}
	for _, a := range []string{AnnotationRevision, AnnotationPinnedReason, AnnotationPinnedMessage} {
		delete(out.Pod.Annotations, a)
	}
	if number > 0 {
		out.Pod.Annotations[AnnotationRevision] = strconv.FormatInt(number, 10)
	}
	if pin != nil {
		out.Pod.Annotations[AnnotationPinnedReason] = pin.Reason
		out.Pod.Annotations[AnnotationPinnedMessage] = pin.Message
	}
	return &out
}

// RollBack pins key to the newest revision before the one of failedHash
// that was Ready and never rolled back, because the failed one did not
// become Ready (reason, message: what went wrong). The failed revision is
// marked so and not judged again. It returns the revision that now runs,
// or ErrNoGoodRevision (the failed one keeps running).
func (s *Store) RollBack(key types.NamespacedName, failedHash, reason, message string) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.histories[key]
	switch {
	case !ok || h.Find(failedHash) == nil:
		return Revision{}, fmt.Errorf("no revision of %s with hash %s", key, failedHash)
	case h.Pin != nil:
		return Revision{}, fmt.Errorf("%s runs the pinned revision %d already", key, h.Pin.Revision)
	}
	failed := h.Find(failedHash)
	failed.Failed = reason + ": " + message
	target := h.previousGood(failed.Number)
	if target == nil {
		if err := s.save(key, h); err != nil {
			return Revision{}, err
		}
		return Revision{}, ErrNoGoodRevision
	}
	h.Pin = &Pin{
		Revision: target.Number, Hash: target.Hash, SourceHash: failedHash, Reason: reason,
		Message: fmt.Sprintf("revision %d %s; revision %d runs until the manifest changes",
			failed.Number, message, target.Number),
		FailedRevision: failed.Number, Time: s.cfg.Clock.Now().UTC(),
	}
	delete(s.resolved, key)
	return *target, s.save(key, h)
}

// Pin runs revision number of key until the manifest changes (0: the
// revision before the one running). Pinning the revision the source
// provides ends the pin. It returns the revision that now runs.
func (s *Store) Pin(key types.NamespacedName, number int64) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.histories[key]
	if !ok || len(h.Revisions) == 0 {
		return Revision{}, fmt.Errorf("no revisions of %s", key)
	}
	target := h.Number(number)
	if number == 0 {
		target = h.previous()
	}
	switch {
	case target == nil && number == 0:
		return Revision{}, fmt.Errorf("%s has no revision before the running one", key)
	case target == nil:
		return Revision{}, fmt.Errorf("%s has no revision %d (see mirrorlet history)", key, number)
	case target.Pod == nil:
		return Revision{}, fmt.Errorf("revision %d of %s has no pod saved", number, key)
	}
	if source := h.sourceHash(); target.Hash == source {
		h.Pin = nil
	} else {
		h.Pin = &Pin{Revision: target.Number, Hash: target.Hash, SourceHash: source, Reason: ReasonManual,
			Message: fmt.Sprintf("mirrorlet rollback pinned revision %d until the manifest changes", target.Number),
			Time:    s.cfg.Clock.Now().UTC()}
	}
	delete(s.resolved, key)
	return *target, s.save(key, h)
}
