package revisions

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
)

// saves writes the histories to disk. Each write syncs a file and its
// directory (a few milliseconds, tens on a busy disk). Resolve runs inside
// the desired set's merge, which every publish of a source waits for, and
// the pod workers and the mirror reconciler hear of a new pod only after
// it: written there, the 48 new revisions of a burst of 50 manifests held
// every one of those pods for 110 ms (measured on containerd, 2 cores).
// So while Run runs, the revisions Resolve records are written by Run's
// goroutine after the merge; pins and marks (rare, and their callers want
// them on disk when they return) are written at once. A crash within that
// moment loses only the record of the newest revision, which the next
// start records again from the manifest.
//
// Every change of a history counts up its generation; a file is written
// only with a newer generation than the one on disk, so a snapshot taken
// before a pin never replaces the pin.
type saves struct {
	// Guarded by the Store's mu.
	gen     map[types.NamespacedName]uint64
	pending map[types.NamespacedName]bool
	async   bool // Run is running
	wake    chan struct{}

	writeMu sync.Mutex
	written map[string]uint64 // path -> generation on disk; under writeMu
	// writeFile writes a file durably (lastgood.WriteAtomic; tests slow it).
	writeFile func(path string, data []byte) error
}

func newSaves() saves {
	return saves{gen: map[types.NamespacedName]uint64{}, pending: map[types.NamespacedName]bool{},
		wake: make(chan struct{}, 1), written: map[string]uint64{}, writeFile: lastgood.WriteAtomic}
}

// changed counts up the generation of key's history and returns it.
// Callers hold the Store's mu.
func (sv *saves) changed(key types.NamespacedName) uint64 {
	sv.gen[key]++
	return sv.gen[key]
}

// write writes data, generation gen of path, unless a newer one is on disk.
func (sv *saves) write(path string, gen uint64, data []byte) error {
	sv.writeMu.Lock()
	defer sv.writeMu.Unlock()
	if sv.written[path] >= gen {
		return nil
	}
	if err := sv.writeFile(path, data); err != nil {
		return err
	}
	sv.written[path] = gen
	return nil
}

// Run writes the revisions Resolve records, from its own goroutine, until
// ctx ends; then it writes what is pending and returns. Without Run they
// are written within Resolve.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	s.saves.async = true
	s.mu.Unlock()
	for {
		select {
		case <-s.saves.wake:
			s.flush()
		case <-ctx.Done():
			s.mu.Lock()
			s.saves.async = false
			s.mu.Unlock()
			s.flush()
			return nil
		}
	}
}

// saveLater writes the history of key by Run's goroutine while Run runs,
// else now. Callers hold s.mu.
func (s *Store) saveLater(key types.NamespacedName, h *History) error {
	if !s.saves.async {
		return s.save(key, h)
	}
	s.saves.changed(key)
	s.saves.pending[key] = true
	select {
	case s.saves.wake <- struct{}{}:
	default:
	}
	return nil
}

// flush writes the pending histories as they are now.
func (s *Store) flush() {
	type snapshot struct {
		key  types.NamespacedName
		gen  uint64
		data []byte
	}
	s.mu.Lock()
	batch := make([]snapshot, 0, len(s.saves.pending))
	for _, key := range slices.SortedFunc(maps.Keys(s.saves.pending), compareKeys) {
		b, err := json.Marshal(s.histories[key])
		if err != nil {
			s.cfg.Log.Error(err, "Cannot encode the revision history", "pod", key)
			continue
		}
		batch = append(batch, snapshot{key: key, gen: s.saves.gen[key], data: b})
	}
	clear(s.saves.pending)
	s.mu.Unlock()
	for _, sn := range batch {
		if err := s.saves.write(historyPath(s.cfg.Dir, sn.key), sn.gen, sn.data); err != nil {
			s.cfg.Log.Error(err, "Cannot save the revision history", "pod", sn.key)
		}
	}
}

func compareKeys(a, b types.NamespacedName) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}
