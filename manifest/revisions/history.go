package revisions

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Revision is one version of a static pod.
type Revision struct {
	// Number counts up per pod from 1.
	Number int64 `json:"number"`
	// Hash is the spec hash: the pod version's UID.
	Hash string `json:"hash"`
	// Created is when the source first provided this version.
	Created time.Time `json:"created"`
	// Source and Origin say where it came from (file path or URL).
	Source string `json:"source"`
	Origin string `json:"origin"`
	// Content is the manifest as read (nil for a pod of a PodList).
	Content []byte `json:"content,omitempty"`
	// Pod is the static pod as mirrorlet runs it.
	Pod *corev1.Pod `json:"pod"`
	// Ready is true once the revision was Ready (every container ready).
	Ready bool `json:"ready,omitempty"`
	// Settled is true once the revision passed its rollback window Ready.
	Settled bool `json:"settled,omitempty"`
	// Failed says why the revision was rolled back; empty if it was not.
	Failed string `json:"failed,omitempty"`
}

// Pin runs an earlier revision instead of the one the source provides.
type Pin struct {
	// Revision and Hash name the revision that runs.
	Revision int64  `json:"revision"`
	Hash     string `json:"hash"`
	// SourceHash is the version the source provided when the pin was made:
	// the pin ends when the source provides another one.
	SourceHash string `json:"sourceHash"`
	// Reason is CamelCase: NotReady, CrashLoopBackOff or Failed for an
	// automatic rollback, ManualRollback for mirrorlet rollback.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// FailedRevision is the revision rolled back from (automatic only).
	FailedRevision int64     `json:"failedRevision,omitempty"`
	Time           time.Time `json:"time"`
}

// History is everything the store keeps of one static pod.
type History struct {
	// Key is <namespace>/<name> of the static pod (its mirror's name).
	Key string `json:"key"`
	// Next is the number of the next revision.
	Next int64 `json:"next"`
	// Revisions are the last ones kept, oldest first.
	Revisions []Revision `json:"revisions"`
	Pin       *Pin       `json:"pin,omitempty"`
}

// Latest returns the newest revision: the one the source provides.
func (h *History) Latest() *Revision {
	if len(h.Revisions) == 0 {
		return nil
	}
	return &h.Revisions[len(h.Revisions)-1]
}

// Running returns the revision that runs: the pinned one, else the latest.
func (h *History) Running() *Revision {
	if h.Pin != nil {
		if r := h.Number(h.Pin.Revision); r != nil {
			return r
		}
	}
	return h.Latest()
}

// Number returns revision n, or nil.
func (h *History) Number(n int64) *Revision {
	for i := range h.Revisions {
		if h.Revisions[i].Number == n {
			return &h.Revisions[i]
		}
	}
	return nil
}

// Find returns the revision of hash, or nil.
func (h *History) Find(hash string) *Revision {
	for i := range h.Revisions {
		if h.Revisions[i].Hash == hash {
			return &h.Revisions[i]
		}
	}
	return nil
}

// sourceHash is the version the source provides now.
func (h *History) sourceHash() string {
	if h.Pin != nil {
		return h.Pin.SourceHash
	}
	if l := h.Latest(); l != nil {
		return l.Hash
	}
	return ""
}

// previousGood returns the newest revision before number that was Ready
// and was never rolled back, or nil.
func (h *History) previousGood(number int64) *Revision {
	for i := len(h.Revisions) - 1; i >= 0; i-- {
		r := &h.Revisions[i]
		if r.Number < number && r.Ready && r.Failed == "" {
			return r
		}
	}
	return nil
}

// previous returns the newest revision before the running one, or nil.
func (h *History) previous() *Revision {
	run := h.Running()
	if run == nil {
		return nil
	}
	for i := len(h.Revisions) - 1; i >= 0; i-- {
		if h.Revisions[i].Number < run.Number {
			return &h.Revisions[i]
		}
	}
	return nil
}

// trim drops the oldest revisions beyond limit, never the pinned one.
func (h *History) trim(limit int) {
	limit = max(limit, 1)
	for len(h.Revisions) > limit {
		drop := 0
		if h.Pin != nil && h.Revisions[0].Number == h.Pin.Revision {
			if len(h.Revisions) <= limit+1 {
				return
			}
			drop = 1
		}
		h.Revisions = append(h.Revisions[:drop], h.Revisions[drop+1:]...)
	}
}
