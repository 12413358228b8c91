package dirsource

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/go-logr/logr"

	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
)

// saver keeps the last good content of the manifests in a
// lastgood.Store. Each save syncs a file and its directory to disk (a few
// milliseconds, tens on a busy disk), so while run runs, saves are made
// after the publish, by run's goroutine, and never delay the next
// manifest: a burst of 50 manifests is published as it is read, not
// after 100 fsyncs. The latest save or removal of a path wins; a pod
// that ran is saved as soon as the disk allows, and only a crash within
// that moment leaves the version before on disk.
type saver struct {
	store *lastgood.Store
	log   logr.Logger

	mu      sync.Mutex
	async   bool               // run is running
	pending map[string]*[]byte // path -> content; nil: remove
	// unsaved holds the paths whose last save failed: the source saves
	// them again at its next read, even when their content is unchanged.
	unsaved map[string]bool
	wake    chan struct{} // cap 1
	done    chan struct{} // closed when run returns
}

func newSaver(store *lastgood.Store, log logr.Logger) *saver {
	return &saver{store: store, log: log, pending: map[string]*[]byte{}, unsaved: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// start makes saves asynchronous until the returned function is called,
// which writes what is pending and returns once it is on disk.
func (sv *saver) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	sv.mu.Lock()
	sv.async, sv.done = true, make(chan struct{})
	sv.mu.Unlock()
	go sv.run(ctx)
	return func() {
		cancel()
		<-sv.done
	}
}

func (sv *saver) run(ctx context.Context) {
	defer close(sv.done)
	for {
		select {
		case <-sv.wake:
			sv.flush()
		case <-ctx.Done():
			sv.mu.Lock()
			sv.async = false
			sv.mu.Unlock()
			sv.flush()
			return
		}
	}
}

// put saves data as the last good content of path.
func (sv *saver) put(path string, data []byte) { sv.queue(path, &data) }

// remove forgets the saved content of path.
func (sv *saver) remove(path string) { sv.queue(path, nil) }

func (sv *saver) queue(path string, data *[]byte) {
	sv.mu.Lock()
	sv.pending[path] = data
	async := sv.async
	sv.mu.Unlock()
	if !async {
		sv.flush()
		return
	}
	select {
	case sv.wake <- struct{}{}:
	default:
	}
}

// failed reports whether the last save of path failed.
func (sv *saver) failed(path string) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.unsaved[path]
}

// keys returns every path saved or about to be.
func (sv *saver) keys() []string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	keys := sv.store.Keys()
	for path := range sv.pending {
		if !slices.Contains(keys, path) {
			keys = append(keys, path)
		}
	}
	return keys
}

// flush writes what is pending, in path order.
func (sv *saver) flush() {
	sv.mu.Lock()
	batch := sv.pending
	sv.pending = map[string]*[]byte{}
	sv.mu.Unlock()
	for _, path := range slices.Sorted(maps.Keys(batch)) {
		if data := batch[path]; data != nil {
			err := sv.store.Put(path, *data)
			if err != nil {
				// The pod runs regardless; only a restart with a bad edit is exposed.
				sv.log.Error(err, "Cannot save the last good version of a manifest", "path", path)
			}
			sv.setUnsaved(path, err != nil)
			continue
		}
		sv.setUnsaved(path, false)
		if err := sv.store.Delete(path); err != nil {
			sv.log.Error(err, "Cannot forget the saved version of a removed manifest", "path", path)
		}
	}
}

func (sv *saver) setUnsaved(path string, unsaved bool) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if unsaved {
		sv.unsaved[path] = true
	} else {
		delete(sv.unsaved, path)
	}
}
