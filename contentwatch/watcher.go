package contentwatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Config configures a Watcher.
type Config struct {
	// OnChange is called with the pod version whose watched content
	// changed; it must not block. Required.
	OnChange func(uid types.UID)
	// Debounce is how long a path must be quiet before its content is
	// compared. Default 2s.
	Debounce time.Duration
	// MaxDelay bounds the wait of a path that never gets quiet. Default
	// 5 × Debounce.
	MaxDelay time.Duration
	// CheckPeriod is how often every path is hashed even without an
	// inotify event. Default 30s.
	CheckPeriod time.Duration
	// StateDir keeps the baselines of every pod version, so that a
	// change made while mirrorlet was stopped is seen; "": in memory
	// only.
	StateDir string
	// Clock drives the debounce and the periodic check. Default: real.
	Clock clock.WithTicker
	Log   logr.Logger
}

// change says what changed for one pod version since it was first
// watched.
type change struct {
	// Seq counts the changes; 0 when none happened.
	Seq uint64
	// Paths are the watched paths of the last change.
	Paths []string
}

// Watcher watches host paths for pod versions. Safe for concurrent use.
type Watcher struct {
	cfg Config
	// kick wakes Run when Watch marked a path dirty or started inotify.
	kick chan struct{}

	mu sync.Mutex
	// notify is the inotify instance, started when the first directory
	// is to be watched and closed when no pod watches anything: an agent
	// whose pods do not opt in holds none (fs.inotify.max_user_instances
	// is 128 per user by default). nil meanwhile.
	notify *fsnotify.Watcher
	// stopped is set when Run has returned: no inotify is started again.
	stopped bool
	// notifyFailed is set once starting inotify failed (logged once).
	notifyFailed bool
	// pods holds each watched pod version's baselines and changes.
	pods map[types.UID]*podWatch
	// paths holds what each watched path was last seen as.
	paths map[string]*pathState
	// dirs maps each directory under inotify to the paths it covers.
	dirs map[string]map[string]bool
	// added holds the directories inotify watches.
	added map[string]bool
	// dirty holds the paths to compare, with when they were first and
	// last marked.
	dirty map[string]*dirtyMark

	// checks counts the comparisons made (for tests).
	checks atomic.Int64
}

type podWatch struct {
	baseline map[string]string // path → hash the pod version runs with
	change   change
}

type pathState struct {
	hash string // "" while missing
	dirs []string
}

type dirtyMark struct{ first, last time.Time }

// New validates and defaults cfg. It starts no inotify instance: that
// waits until a pod watches a path.
func New(cfg Config) (*Watcher, error) {
	if cfg.OnChange == nil {
		return nil, errors.New("contentwatch: OnChange is required")
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 2 * time.Second
	}
	if cfg.MaxDelay < cfg.Debounce {
		cfg.MaxDelay = 5 * cfg.Debounce
	}
	if cfg.CheckPeriod <= 0 {
		cfg.CheckPeriod = 30 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Watcher{cfg: cfg, kick: make(chan struct{}, 1), pods: map[types.UID]*podWatch{},
		paths: map[string]*pathState{}, dirs: map[string]map[string]bool{}, added: map[string]bool{}, dirty: map[string]*dirtyMark{}}, nil
}

// Watch sets the paths watched for pod version uid. Paths already watched
// for it keep their baseline; new ones get the baseline saved in StateDir
// (a content that differs from it is a change), else the current content.
// Cheap when nothing changed: pod workers call it on every sync.
func (w *Watcher) Watch(uid types.UID, paths []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	pw := w.pods[uid]
	var saved map[string]string
	if pw == nil {
		if len(paths) == 0 {
			return
		}
		pw = &podWatch{baseline: map[string]string{}}
		w.pods[uid] = pw
		saved = w.loadLocked(uid)
	}
	if slices.Equal(slices.Sorted(maps.Keys(pw.baseline)), slices.Sorted(slices.Values(paths))) {
		return
	}
	keep := map[string]bool{}
	for _, p := range paths {
		keep[p] = true
		if _, ok := pw.baseline[p]; !ok {
			pw.baseline[p] = w.baselineLocked(p, saved)
		}
	}
	for p := range pw.baseline {
		if !keep[p] {
			delete(pw.baseline, p)
		}
	}
	if len(pw.baseline) == 0 {
		delete(w.pods, uid)
	}
	w.saveLocked(uid)
	w.pruneLocked()
}

// baselineLocked returns the baseline of a path newly watched: the saved
// one, else the current content. A saved one that differs from content
// that is present marks the path dirty: it changed while mirrorlet was
// stopped.
func (w *Watcher) baselineLocked(path string, saved map[string]string) string {
	cur := w.pathLocked(path).hash
	base, ok := saved[path]
	if !ok {
		return cur
	}
	if cur != "" && cur != base {
		w.markLocked(path, w.cfg.Clock.Now())
		w.wake()
	}
	return base
}

// wake makes Run look at the dirty paths and the inotify instance again.
func (w *Watcher) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// notifyLocked returns the inotify instance, starting it when there is
// none; nil when it cannot be started (the periodic check covers the
// paths meanwhile) or Run has returned.
func (w *Watcher) notifyLocked() *fsnotify.Watcher {
	if w.notify != nil || w.stopped {
		return w.notify
	}
	n, err := fsnotify.NewWatcher()
	if err != nil {
		if !w.notifyFailed {
			w.notifyFailed = true
			w.cfg.Log.Error(fmt.Errorf("starting inotify for host file changes: %w", err),
				"Cannot start inotify; the periodic check covers the watched paths")
		}
		return nil
	}
	w.notify, w.notifyFailed = n, false
	w.wake() // Run selects on the new instance's channels
	return n
}

// closeNotifyLocked closes the inotify instance; its directories are
// added again to the next one.
func (w *Watcher) closeNotifyLocked() {
	if w.notify == nil {
		return
	}
	_ = w.notify.Close()
	w.notify = nil
	clear(w.added)
}

// channels returns the event and error channels of the inotify instance
// (nil, which never delivers, when there is none).
func (w *Watcher) channels() (chan fsnotify.Event, chan error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.notify == nil {
		return nil, nil
	}
	return w.notify.Events, w.notify.Errors
}

// ended handles the channels of an inotify instance that were closed: an
// instance closed by pruneLocked is gone already; the current one, closed
// by fsnotify itself, is dropped and started again when needed.
func (w *Watcher) ended(events chan fsnotify.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.notify != nil && w.notify.Events == events {
		w.closeNotifyLocked()
	}
}

// Forget stops watching for pod version uid and removes its saved
// baselines.
func (w *Watcher) Forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.pods[uid]; ok {
		delete(w.pods, uid)
		w.pruneLocked()
	}
	w.removeSaved(uid)
}

// Changed returns how many changes happened for pod version uid since it
// was first watched (0: none), and the paths of the last one.
func (w *Watcher) Changed(uid types.UID) (seq uint64, paths []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pw, ok := w.pods[uid]; ok {
		return pw.change.Seq, slices.Clone(pw.change.Paths)
	}
	return 0, nil
}

// pathLocked returns the state of path, hashing it and putting its
// directories under inotify when it is new.
func (w *Watcher) pathLocked(path string) *pathState {
	if ps, ok := w.paths[path]; ok {
		return ps
	}
	ps := &pathState{}
	w.paths[path] = ps
	w.refreshLocked(path, ps)
	return ps
}

// refreshLocked hashes path and updates the directories watched for it.
func (w *Watcher) refreshLocked(path string, ps *pathState) {
	h, dirs, err := hashPath(path)
	if err != nil {
		w.cfg.Log.Error(err, "Cannot read watched host path; keeping its last content", "path", path)
		return
	}
	ps.hash = h
	for _, d := range ps.dirs {
		if !slices.Contains(dirs, d) {
			delete(w.dirs[d], path)
		}
	}
	ps.dirs = dirs
	for _, d := range dirs {
		if w.dirs[d] == nil {
			w.dirs[d] = map[string]bool{}
		}
		w.dirs[d][path] = true
		if !w.added[d] {
			// A directory that does not exist yet is tried again at the
			// next check.
			n := w.notifyLocked()
			if n == nil {
				continue
			}
			if err := n.Add(d); err != nil {
				w.cfg.Log.V(1).Info("Cannot watch directory; the periodic check covers it", "dir", d, "err", err.Error())
				continue
			}
			w.added[d] = true
		}
	}
}

// pruneLocked drops the paths no pod watches and the directories no path
// needs.
func (w *Watcher) pruneLocked() {
	used := map[string]bool{}
	for _, pw := range w.pods {
		for p := range pw.baseline {
			used[p] = true
		}
	}
	for p, ps := range w.paths {
		if used[p] {
			continue
		}
		for _, d := range ps.dirs {
			delete(w.dirs[d], p)
		}
		delete(w.paths, p)
		delete(w.dirty, p)
	}
	for d, ps := range w.dirs {
		if len(ps) == 0 {
			delete(w.dirs, d)
			if w.added[d] {
				delete(w.added, d)
				_ = w.notify.Remove(d) // gone already when the directory was removed
			}
		}
	}
	if len(w.paths) == 0 {
		w.closeNotifyLocked()
	}
}

// Run handles inotify events, the debounce and the periodic check until
// ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	defer func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.stopped = true
		w.closeNotifyLocked()
	}()
	ticker := w.cfg.Clock.NewTicker(w.cfg.CheckPeriod)
	defer ticker.Stop()
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var fire <-chan time.Time
		if timer != nil {
			fire = timer.C()
		}
		events, errs := w.channels()
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				w.ended(events)
				continue
			}
			w.seen(ev)
		case err, ok := <-errs:
			if !ok {
				w.ended(events)
				continue
			}
			w.cfg.Log.Error(err, "Inotify error; the periodic check covers missed changes")
		case <-ticker.C():
			w.checkAll()
		case <-fire:
			timer = nil
		case <-w.kick:
		}
		timer = w.settle(timer)
	}
}

// seen marks dirty the paths covered by the directory of an event (or by
// the event's path itself, when it is a watched directory).
func (w *Watcher) seen(ev fsnotify.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	name := ev.Name
	if ev.Has(fsnotify.Remove|fsnotify.Rename) && w.added[name] {
		delete(w.added, name) // inotify dropped it; added again when back
	}
	now := w.cfg.Clock.Now()
	for _, d := range []string{filepath.Dir(name), name} {
		for p := range w.dirs[d] {
			w.markLocked(p, now)
		}
	}
}

func (w *Watcher) markLocked(path string, now time.Time) {
	if m, ok := w.dirty[path]; ok {
		m.last = now
		return
	}
	w.dirty[path] = &dirtyMark{first: now, last: now}
}

// checkAll hashes every path; those whose content differs from when last
// seen are marked dirty (and compared once quiet).
func (w *Watcher) checkAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Now()
	for p, ps := range w.paths {
		before := ps.hash
		w.refreshLocked(p, ps)
		if ps.hash != before {
			ps.hash = before // compared again, with the pods' baselines, once quiet
			w.markLocked(p, now)
		}
	}
}

// settle compares the dirty paths that are due and returns the timer for
// the next one (nil when none is dirty).
func (w *Watcher) settle(timer clock.Timer) clock.Timer {
	changed, next := w.compareDue()
	for _, uid := range changed {
		w.cfg.OnChange(uid)
	}
	if timer != nil {
		timer.Stop()
	}
	if next <= 0 {
		return nil
	}
	return w.cfg.Clock.NewTimer(next)
}

// compareDue compares the paths quiet for Debounce (or dirty for
// MaxDelay) with each pod's baseline; it returns the pod versions that
// changed and how long until the next path is due (0: none dirty).
func (w *Watcher) compareDue() ([]types.UID, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Now()
	var due []string
	var next time.Duration
	for p, m := range w.dirty {
		at := m.last.Add(w.cfg.Debounce)
		if limit := m.first.Add(w.cfg.MaxDelay); limit.Before(at) {
			at = limit
		}
		if !now.Before(at) {
			due = append(due, p)
			delete(w.dirty, p)
		} else if d := at.Sub(now); next == 0 || d < next {
			next = d
		}
	}
	if len(due) == 0 {
		return nil, next
	}
	slices.Sort(due)
	w.checks.Add(1)
	return w.compareLocked(due), next
}

// compareLocked hashes paths again and records a change for every pod
// version whose baseline of one differs from content that is present.
func (w *Watcher) compareLocked(paths []string) []types.UID {
	for _, p := range paths {
		if ps, ok := w.paths[p]; ok {
			w.refreshLocked(p, ps)
		}
	}
	var out []types.UID
	for uid, pw := range w.pods {
		var changed []string
		for _, p := range paths {
			base, watched := pw.baseline[p]
			ps := w.paths[p]
			if !watched || ps == nil || ps.hash == "" || ps.hash == base {
				continue // not this pod's, missing, or the same content
			}
			pw.baseline[p] = ps.hash
			changed = append(changed, p)
		}
		if len(changed) > 0 {
			pw.change = change{Seq: pw.change.Seq + 1, Paths: changed}
			w.saveLocked(uid)
			w.cfg.Log.Info("Watched host content changed", "uid", uid, "paths", changed)
			out = append(out, uid)
		}
	}
	return out
}
