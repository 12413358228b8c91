package dirsource

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/clock"
	"k8s.io/utils/inotify"

	"github.com/mirrorlet/mirrorlet/filesafety"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
)

// Config configures a Source.
type Config struct {
	// Path is the manifest directory. Required.
	Path string
	// NodeName is the node the pods run on. Required.
	NodeName string
	// CheckFrequency is the period of full rescans. Default 20s.
	CheckFrequency time.Duration
	// Debounce is how long the source waits after a change before it
	// rescans, restarted by every further change (bounded by MaxDelay).
	// Default 20ms.
	Debounce time.Duration
	// MaxDelay bounds how long a burst of changes can defer a rescan.
	// Default 100ms.
	MaxDelay time.Duration
	// AllowInsecurePermissions reads manifests that group or others can
	// write, or that another non-root user owns (development only). Else
	// such a file is a bad manifest: its last good version keeps running.
	AllowInsecurePermissions bool
	// Publish receives every snapshot. Required.
	Publish func(desired.Snapshot)
	// LastGood, if set, keeps the last good content of every manifest on
	// disk: a file found invalid (or a directory found unreadable) after a
	// restart runs the version that ran before.
	LastGood *lastgood.Store
	Log      logr.Logger
	Clock    clock.WithTicker
}

// Source reads one manifest directory.
type Source struct {
	cfg Config
	// last holds the last good static pod of every file, by path.
	last map[string]*manifest.StaticPod
	// reads holds what each file's content loaded to when it was last
	// read, by path: a rescan decodes only the files whose bytes changed.
	reads map[string]fileRead
	// decode is manifest.Load (tests count its calls).
	decode func([]byte, manifest.Identity) (*manifest.StaticPod, error)
	// problems holds the problem of every file that did not load, by path.
	problems map[string]desired.Problem
	// skipped remembers files already logged as skipped.
	skipped sets.Set[string]
	// failing is true while the directory cannot be read, so the error is
	// logged once per outage.
	failing bool
	// published is true once a snapshot was published.
	published bool
	// saver keeps the last good versions (nil without LastGood).
	saver *saver
	// out publishes: Config.Publish, or while Run runs a publisher.
	out func(desired.Snapshot)
}

// New validates and defaults cfg and returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.Path == "" {
		return nil, errors.New("manifest directory path is required")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("node name is required")
	}
	if cfg.Publish == nil {
		return nil, errors.New("publish function is required")
	}
	if cfg.CheckFrequency <= 0 {
		cfg.CheckFrequency = 20 * time.Second
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 20 * time.Millisecond
	}
	if cfg.MaxDelay < cfg.Debounce {
		cfg.MaxDelay = max(100*time.Millisecond, cfg.Debounce)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("resolving manifest directory %q: %w", cfg.Path, err)
	}
	cfg.Path = path
	s := &Source{cfg: cfg, last: map[string]*manifest.StaticPod{}, problems: map[string]desired.Problem{},
		reads: map[string]fileRead{}, skipped: sets.New[string](), decode: manifest.Load}
	if cfg.LastGood != nil {
		s.saver = newSaver(cfg.LastGood, cfg.Log)
	}
	s.out = cfg.Publish
	return s, nil
}

// Run scans the directory, publishes, and keeps doing so on every change
// until ctx ends. It returns nil when ctx ends.
//
// A manifest whose writer is done with it (closed after writing, or
// renamed into place) is read at once, unless it already was in this
// burst of changes; every other change (a file created or still being
// written, removed, renamed away, its mode changed) waits for the
// debounce and a full rescan after the burst (a burst of changes all
// read at once needs none). A file read at once that does not load is
// not reported: the rescan after the burst reads it again and reports it
// if it is still bad.
func (s *Source) Run(ctx context.Context) error {
	w, err := newWatch(s.cfg.Path)
	if err != nil {
		return err
	}
	defer w.close()
	if s.saver != nil {
		defer s.saver.start(ctx)()
	}
	p, stop := startPublisher(s.cfg.Publish)
	s.out = p.offer
	defer func() {
		s.out = s.cfg.Publish
		stop()
	}()
	s.Rescan()
	ticker := s.cfg.Clock.NewTicker(s.cfg.CheckFrequency)
	defer ticker.Stop()
	// While the directory is missing, look for it every second.
	retry := s.cfg.Clock.NewTicker(time.Second)
	defer retry.Stop()
	d := &debouncer{clock: s.cfg.Clock, quiet: s.cfg.Debounce, max: s.cfg.MaxDelay}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.watcher.Event:
			if !ok {
				return errors.New("file watcher closed")
			}
			s.changed(w.drain(ev), d)
		case err, ok := <-w.watcher.Error:
			if !ok {
				return errors.New("file watcher closed")
			}
			s.cfg.Log.Error(err, "File watcher error, rescanning", "path", s.cfg.Path)
			s.Rescan()
		case <-d.fired():
			if d.done() {
				s.Rescan()
			}
		case <-ticker.C():
			w.ensure()
			s.Rescan()
		case <-retry.C():
			if w.ensure() {
				s.Rescan()
			}
		}
	}
}

// changed acts on a batch of inotify events: the manifests they show
// complete and not yet read in this burst are read and published at
// once; any other change waits for the rescan after the burst.
func (s *Source) changed(events []*inotify.Event, d *debouncer) {
	var now []string
	for _, ev := range events {
		switch kind := s.kindOf(ev); {
		case kind == ignored:
		case kind == complete && !d.read.Has(ev.Name):
			if !slices.Contains(now, ev.Name) {
				now = append(now, ev.Name)
			}
			d.poke(false)
		default:
			d.poke(true)
		}
	}
	if len(now) == 0 {
		return
	}
	if d.read == nil {
		d.read = sets.New[string]()
	}
	changed := s.readNow(now, d.read)
	for _, path := range now {
		if !d.read.Has(path) {
			d.poke(true) // not read: the rescan reads it and reports it if still bad
		}
	}
	if changed {
		s.published = true
		s.out(s.snapshot())
	}
}

// eventKind classifies an inotify event.
type eventKind int

const (
	// ignored: a file that is not a manifest (a writer's temporary file).
	ignored eventKind = iota
	// complete: a manifest its writer is done with (IN_CLOSE_WRITE,
	// IN_MOVED_TO): its content can be read now.
	complete
	// pending: any other change, seen by the rescan after the burst.
	pending
)

func (s *Source) kindOf(ev *inotify.Event) eventKind {
	if filepath.Dir(ev.Name) != s.cfg.Path {
		return pending // the directory itself
	}
	if !IsManifestName(filepath.Base(ev.Name)) {
		return ignored
	}
	if ev.Mask&(inotify.InCloseWrite|inotify.InMovedTo) != 0 && ev.Mask&inotify.InIsdir == 0 {
		return complete
	}
	return pending
}

// readNow reads the manifests in paths, adds those it read to read, and
// reports whether one of them changed the snapshot. One that cannot be
// read or loaded is left to its next write or the rescan after the burst
// (it may be mid-way through an editor's save, or truncated by a writer
// that is at it again).
func (s *Source) readNow(paths []string, read sets.Set[string]) bool {
	if s.failing || !s.published || s.checkPermissions(s.cfg.Path, filesafety.CheckManifestDir) != nil {
		return false
	}
	changed := false
	for _, path := range paths {
		if s.checkPermissions(path, filesafety.CheckManifest) != nil {
			continue
		}
		sp, err := s.load(path)
		if err != nil {
			continue
		}
		read.Insert(path)
		_, bad := s.problems[path]
		if s.last[path] != sp || bad {
			changed = true
		}
		s.last[path] = sp
		delete(s.problems, path)
	}
	return changed
}

// watch is an inotify watch of the manifest directory that is set up again
// when the directory comes back after it was removed.
type watch struct {
	path     string
	watcher  *inotify.Watcher
	watching bool
}

// watchFlags are the changes of the directory's entries the source
// follows, and the directory's own removal.
const watchFlags = inotify.InCreate | inotify.InModify | inotify.InAttrib | inotify.InCloseWrite |
	inotify.InMovedFrom | inotify.InMovedTo | inotify.InDelete | inotify.InDeleteSelf | inotify.InMoveSelf

func newWatch(path string) (*watch, error) {
	watcher, err := inotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("creating file watcher: %w", err)
	}
	w := &watch{path: path, watcher: watcher}
	w.ensure()
	return w, nil
}

// ensure watches the directory if it is not watched yet, and reports
// whether it started watching now.
func (w *watch) ensure() bool {
	if w.watching {
		return false
	}
	_ = w.watcher.RemoveWatch(w.path) // forget a watch the kernel dropped
	w.watching = w.watcher.AddWatch(w.path, watchFlags) == nil
	return w.watching
}

// drain returns ev and every event already waiting after it, so that a
// burst is handled as one batch.
func (w *watch) drain(ev *inotify.Event) []*inotify.Event {
	events := []*inotify.Event{ev}
	w.seen(ev)
	for {
		select {
		case ev, ok := <-w.watcher.Event:
			if !ok {
				return events
			}
			w.seen(ev)
			events = append(events, ev)
		default:
			return events
		}
	}
}

func (w *watch) seen(ev *inotify.Event) {
	if ev.Name == w.path && ev.Mask&(inotify.InDeleteSelf|inotify.InMoveSelf|inotify.InIgnored) != 0 {
		w.watching = false
	}
}

// close stops the watcher. Its reader goroutine ends on the next event
// read after Close; with no watch left, a watch of the parent directory,
// removed by Close, makes that event.
func (w *watch) close() {
	if !w.watching {
		_ = w.watcher.AddWatch(filepath.Dir(w.path), inotify.InDeleteSelf)
	}
	go func() {
		for range w.watcher.Event { // unblock a send under way
		}
	}()
	_ = w.watcher.Close()
}

// debouncer fires once changes have been quiet for quiet, or max after the
// first change of a burst, whichever comes first. One timer does both.
type debouncer struct {
	clock      clock.Clock
	quiet, max time.Duration
	timer      clock.Timer
	burstStart time.Time // zero: no burst under way
	// read holds the manifests read at once in this burst: a further
	// write waits for the rescan that ends the burst.
	read sets.Set[string]
	// dirty is true when the burst had a change not read at once: the
	// burst ends with a rescan only then.
	dirty bool
}

// poke starts a burst or extends it; dirty says the change was not read
// at once.
func (d *debouncer) poke(dirty bool) {
	d.dirty = d.dirty || dirty
	now := d.clock.Now()
	if d.burstStart.IsZero() {
		d.burstStart = now
	}
	wait := min(d.quiet, d.burstStart.Add(d.max).Sub(now))
	if d.timer == nil {
		d.timer = d.clock.NewTimer(wait)
		return
	}
	if !d.timer.Stop() {
		select { // drain a tick that fired but was not read
		case <-d.timer.C():
		default:
		}
	}
	d.timer.Reset(wait)
}

// fired delivers when a burst is over; it is nil (never ready) when no burst
// is under way. The caller must call done after receiving.
func (d *debouncer) fired() <-chan time.Time {
	if d.burstStart.IsZero() {
		return nil
	}
	return d.timer.C()
}

// done ends the burst and reports whether it needs a rescan.
func (d *debouncer) done() bool {
	dirty := d.dirty
	d.burstStart, d.read, d.dirty = time.Time{}, nil, false
	return dirty
}

// Rescan reads the whole directory and publishes a snapshot, unless the
// directory cannot be read.
func (s *Source) Rescan() {
	entries, err := os.ReadDir(s.cfg.Path)
	if err != nil {
		if !s.failing {
			s.cfg.Log.Error(err, "Cannot read manifest directory, keeping the pods it had; retrying", "path", s.cfg.Path)
		}
		s.failing = true
		if !s.published && s.cfg.LastGood != nil {
			// At start: run what ran before the restart.
			s.published = true
			s.out(s.restoreAll(fmt.Errorf("manifest directory %s: %w", s.cfg.Path, err)))
		}
		return
	}
	if s.failing {
		s.cfg.Log.Info("Manifest directory readable again", "path", s.cfg.Path)
		s.failing = false
	}
	s.published = true
	s.out(s.scan(entries))
}

func (s *Source) scan(entries []fs.DirEntry) desired.Snapshot {
	seen := sets.New[string]()
	s.problems = map[string]desired.Problem{}
	dirErr := s.checkPermissions(s.cfg.Path, filesafety.CheckManifestDir)
	for _, e := range entries {
		if !s.wanted(e.Name()) {
			continue
		}
		path := filepath.Join(s.cfg.Path, e.Name())
		seen.Insert(path)
		loadErr := dirErr
		if loadErr == nil {
			loadErr = s.checkPermissions(path, filesafety.CheckManifest)
		}
		var sp *manifest.StaticPod
		if loadErr == nil {
			sp, loadErr = s.load(path)
		}
		if loadErr != nil {
			sp = s.failed(path, loadErr)
		}
		if sp != nil {
			s.last[path] = sp
		}
	}
	for path := range s.last {
		if !seen.Has(path) {
			delete(s.last, path)
		}
	}
	for path := range s.reads {
		if !seen.Has(path) {
			delete(s.reads, path)
		}
	}
	s.forgetRemoved(seen)
	return s.snapshot()
}

// failed records the problem of a manifest that did not load and returns
// its last good version to keep running, or nil.
func (s *Source) failed(path string, err error) *manifest.StaticPod {
	prev := s.last[path]
	if prev == nil {
		prev = s.restore(path)
	}
	p := desired.Problem{Origin: path, Err: err}
	if prev != nil {
		p.Key = prev.Key()
	}
	s.problems[path] = p
	return prev
}

// snapshot is what the source provides now: every manifest's pod (or its
// last good version) and every problem, in file name order.
func (s *Source) snapshot() desired.Snapshot {
	var snap desired.Snapshot
	for _, path := range slices.Sorted(maps.Keys(s.last)) {
		snap.Pods = append(snap.Pods, s.last[path])
	}
	for _, path := range slices.Sorted(maps.Keys(s.problems)) {
		snap.Problems = append(snap.Problems, s.problems[path])
	}
	return snap
}

// restore returns the last good version of path saved before a restart,
// or nil.
func (s *Source) restore(path string) *manifest.StaticPod {
	if s.cfg.LastGood == nil {
		return nil
	}
	e, ok := s.cfg.LastGood.Get(path)
	if !ok {
		return nil
	}
	sp, err := s.decode(e.Data, s.identity(path))
	if err != nil {
		// Saved by a mirrorlet with other rules: it cannot run now.
		s.cfg.Log.Error(err, "Saved last good manifest no longer loads", "path", path, "saved", e.Saved)
		return nil
	}
	s.cfg.Log.Info("Running the last good version of an invalid manifest, saved before the restart", "path", path, "saved", e.Saved)
	return sp
}

// restoreAll returns every saved pod, each with the problem err: what runs
// while the directory cannot be read at start.
func (s *Source) restoreAll(err error) desired.Snapshot {
	var snap desired.Snapshot
	for _, path := range s.cfg.LastGood.Keys() {
		if sp := s.restore(path); sp != nil {
			s.last[path] = sp
			snap.Pods = append(snap.Pods, sp)
			snap.Problems = append(snap.Problems, desired.Problem{Key: sp.Key(), Origin: path, Err: err})
		}
	}
	return snap
}

// forgetRemoved drops the saved version of every manifest no longer in
// the directory: its pod stops, and must not come back after a restart.
func (s *Source) forgetRemoved(seen sets.Set[string]) {
	if s.saver == nil {
		return
	}
	for _, path := range s.saver.keys() {
		if !seen.Has(path) {
			s.saver.remove(path)
		}
	}
}

// save keeps data as the last good content of path.
func (s *Source) save(path string, data []byte) {
	if s.saver != nil {
		s.saver.put(path, data)
	}
}

func (s *Source) identity(path string) manifest.Identity {
	return manifest.Identity{NodeName: s.cfg.NodeName, Source: manifest.SourceFile, Origin: path, Seen: s.cfg.Clock.Now()}
}

// checkPermissions returns a manifest error for path when check finds it
// unsafe, unless insecure permissions are allowed.
func (s *Source) checkPermissions(path string, check func(string) error) error {
	if s.cfg.AllowInsecurePermissions {
		return nil
	}
	err := check(path)
	if ue, ok := errors.AsType[*filesafety.UnsafeError](err); ok {
		return &manifest.Error{Origin: path, Err: errors.New(ue.Detail())}
	}
	if err != nil {
		return &manifest.Error{Origin: path, Err: err}
	}
	return nil
}

// IsManifestName reports whether a file name is read as a manifest: not a
// dotfile, and ending in .yaml, .yml or .json.
func IsManifestName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// wanted reports whether a directory entry name is a manifest by its name,
// logging skipped names once.
func (s *Source) wanted(name string) bool {
	if IsManifestName(name) {
		return true
	}
	if strings.HasPrefix(name, ".") {
		return false
	}
	if !s.skipped.Has(name) {
		s.skipped.Insert(name)
		s.cfg.Log.V(1).Info("Skipping file that is not a manifest (only .yaml, .yml and .json are read)",
			"path", filepath.Join(s.cfg.Path, name))
	}
	return false
}

// fileRead is what one file's content loaded to: the static pod, or the
// error. It is kept with a hash of the content rather than the content.
type fileRead struct {
	sum [sha256.Size]byte
	sp  *manifest.StaticPod
	err error
}

// load reads one manifest file. Content unchanged since the file was last
// read is not decoded again: it loads to what it loaded to then (the same
// StaticPod, or the same error). Changed content that makes the same pod
// keeps the previous StaticPod, so its seen time stays put.
func (s *Source) load(path string) (*manifest.StaticPod, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, &manifest.Error{Origin: path, Err: err}
	}
	sum := sha256.Sum256(data)
	if r, ok := s.reads[path]; ok && r.sum == sum && (r.err != nil || r.sp == s.last[path]) {
		if r.err == nil && s.saver != nil && s.saver.failed(path) {
			s.save(path, data) // the last save did not reach the disk
		}
		return r.sp, r.err
	}
	sp, err := s.loadChanged(path, data)
	s.reads[path] = fileRead{sum: sum, sp: sp, err: err}
	return sp, err
}

// loadChanged decodes content read from path and saves it as the last
// good version when it loads.
func (s *Source) loadChanged(path string, data []byte) (*manifest.StaticPod, error) {
	sp, err := s.decode(data, s.identity(path))
	if err != nil {
		return nil, err
	}
	s.save(path, data)
	if prev := s.last[path]; prev != nil && prev.Hash == sp.Hash {
		if manifest.SameMetadata(prev, sp) {
			return prev, nil
		}
		sp.Pod.Annotations[manifest.AnnotationSeen] = prev.Pod.Annotations[manifest.AnnotationSeen]
	}
	return sp, nil
}

// ReadFile reads a manifest file as the source does: a regular file (links
// followed) of at most manifest.MaxManifestSize bytes, never blocking on a
// FIFO.
func ReadFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	switch {
	case info.IsDir():
		return nil, errors.New("is a directory, not a manifest file")
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("is not a regular file (mode %s)", info.Mode().Type())
	case info.Size() > manifest.MaxManifestSize:
		return nil, fmt.Errorf("file is %d bytes, larger than the limit of %d", info.Size(), manifest.MaxManifestSize)
	}
	// O_NONBLOCK: a FIFO swapped in after the Stat must not hang the scan.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	defer func() { _ = f.Close() }()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil, errors.New("is not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, manifest.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if len(data) > manifest.MaxManifestSize {
		return nil, fmt.Errorf("file is larger than the limit of %d bytes", manifest.MaxManifestSize)
	}
	return data, nil
}
