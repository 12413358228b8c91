package staticpod

import (
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// learnAttempts raises the worker's attempt numbers of uid to what the
// runtime lists: every container of every sandbox of uid, and the numbers
// recorded on the sandboxes when they were made. This is how restart counts
// continue across sandboxes, also after a restart of mirrorlet.
func (w *worker) learnAttempts(uid types.UID, pods []mruntime.Pod) {
	for _, p := range pods {
		for name, a := range decodeAttempts(p.Annotations[mruntime.AnnotationAttempts]) {
			w.recordAttempt(uid, name, a)
		}
		for _, c := range p.Containers {
			w.recordAttempt(uid, c.Name, c.Attempt)
		}
	}
}

// recordAttempt notes that attempt of container name of uid exists.
func (w *worker) recordAttempt(uid types.UID, name string, attempt uint32) {
	m := w.attempts[uid]
	if m == nil {
		m = map[string]uint32{}
		w.attempts[uid] = m
	}
	if old, ok := m[name]; !ok || attempt > old {
		m[name] = attempt
	}
}

// nextAttempt is the attempt number of the next start of container name.
func (w *worker) nextAttempt(uid types.UID, name string) uint32 {
	if a, ok := w.attempts[uid][name]; ok {
		return a + 1
	}
	return 0
}

// encodeAttempts writes attempt numbers as "a=1,b=0", sorted by name.
func encodeAttempts(m map[string]uint32) string {
	parts := make([]string, 0, len(m))
	for name, a := range m {
		parts = append(parts, name+"="+strconv.FormatUint(uint64(a), 10))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// decodeAttempts reads what encodeAttempts wrote; malformed parts are
// skipped.
func decodeAttempts(s string) map[string]uint32 {
	out := map[string]uint32{}
	for _, part := range strings.Split(s, ",") {
		name, num, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			continue
		}
		if a, err := strconv.ParseUint(num, 10, 32); err == nil {
			out[name] = uint32(a)
		}
	}
	return out
}
