package revisions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Annotations of the pods Resolve returns.
const (
	// AnnotationRevision is the number of the running revision.
	AnnotationRevision = "mirrorlet.io/revision"
	// AnnotationPinnedReason and AnnotationPinnedMessage say why an
	// earlier revision runs (absent when the source's version runs).
	AnnotationPinnedReason  = "mirrorlet.io/pinned-reason"
	AnnotationPinnedMessage = "mirrorlet.io/pinned-message"
)

// Pin reasons.
const (
	ReasonNotReady  = "NotReady"
	ReasonCrashLoop = "CrashLoopBackOff"
	ReasonFailed    = "Failed"
	ReasonManual    = "ManualRollback"
)

const (
	defaultLimit        = 5
	historyFileSuffix   = ".json"
	temporaryFilePrefix = ".tmp-"
)

// ErrNoGoodRevision is returned by RollBack when no earlier revision was
// ever Ready: nothing is pinned.
var ErrNoGoodRevision = errors.New("no earlier revision was ever Ready")

// Config configures a Store.
type Config struct {
	// Dir holds one file per static pod; created (mode 0700) if missing.
	Dir string
	// Limit is how many revisions are kept per pod (the pinned one is kept
	// beyond it). Default 5.
	Limit int
	// Clock stamps revisions and pins. Default: the real clock.
	Clock clock.PassiveClock
	Log   logr.Logger
}

// Store keeps the revisions of every static pod. Safe for concurrent use.
type Store struct {
	cfg       Config
	mu        sync.Mutex
	histories map[types.NamespacedName]*History
	// resolved caches what Resolve returned for a source pod, so the same
	// input gives the same pointer while nothing changes.
	resolved map[types.NamespacedName]resolution
	// saves are the writes of the histories to disk (see saves.go).
	saves saves
}

// Open reads the store in cfg.Dir. Files that cannot be read are logged
// and left alone (they are replaced at the pod's next revision).
func Open(cfg Config) (*Store, error) {
	if cfg.Limit <= 0 {
		cfg.Limit = defaultLimit
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating revision store %s: %w", cfg.Dir, err)
	}
	s := &Store{cfg: cfg, histories: map[types.NamespacedName]*History{}, resolved: map[types.NamespacedName]resolution{},
		saves: newSaves()}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("reading revision store %s: %w", cfg.Dir, err)
	}
	for _, e := range entries {
		path := filepath.Join(cfg.Dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), temporaryFilePrefix):
			_ = os.Remove(path) // left by a crash
		case e.IsDir() || !strings.HasSuffix(e.Name(), historyFileSuffix):
		default:
			s.load(path)
		}
	}
	return s, nil
}

func (s *Store) load(path string) {
	h, err := readHistory(path)
	if err != nil {
		s.cfg.Log.Error(err, "Cannot read revision history; starting it again", "path", path)
		return
	}
	key, ok := parseKey(h.Key)
	if !ok || historyPath(s.cfg.Dir, key) != path {
		s.cfg.Log.Error(nil, "Revision history file does not match its key; ignored", "path", path, "key", h.Key)
		return
	}
	s.histories[key] = h
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.cfg.Dir }

// History returns a copy of what the store keeps of key.
func (s *Store) History(key types.NamespacedName) (History, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.histories[key]
	if !ok {
		return History{}, false
	}
	return h.clone(), true
}

// Revision returns the revision of key with hash.
func (s *Store) Revision(key types.NamespacedName, hash string) (Revision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.histories[key]; ok {
		if r := h.Find(hash); r != nil {
			return *r, true
		}
	}
	return Revision{}, false
}

// MarkReady records that the revision hash of key was Ready.
func (s *Store) MarkReady(key types.NamespacedName, hash string) error {
	return s.mark(key, hash, func(r *Revision) bool {
		changed := !r.Ready
		r.Ready = true
		return changed
	})
}

// MarkSettled records that the revision hash of key passed its rollback
// window: it is not judged again.
func (s *Store) MarkSettled(key types.NamespacedName, hash string) error {
	return s.mark(key, hash, func(r *Revision) bool {
		changed := !r.Settled
		r.Settled = true
		return changed
	})
}

func (s *Store) mark(key types.NamespacedName, hash string, fn func(*Revision) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.histories[key]
	if !ok {
		return fmt.Errorf("no revisions of %s", key)
	}
	r := h.Find(hash)
	if r == nil {
		return fmt.Errorf("no revision of %s with hash %s", key, hash)
	}
	if !fn(r) {
		return nil
	}
	return s.save(key, h)
}

// save writes the history of key now. Callers hold s.mu.
func (s *Store) save(key types.NamespacedName, h *History) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding revisions of %s: %w", key, err)
	}
	return s.saves.write(historyPath(s.cfg.Dir, key), s.saves.changed(key), b)
}

func (h *History) clone() History {
	out := *h
	out.Revisions = append([]Revision(nil), h.Revisions...)
	if h.Pin != nil {
		p := *h.Pin
		out.Pin = &p
	}
	return out
}

// historyPath is the file of key: <namespace>_<name>.json (both are DNS
// names, which hold no "_" or "/").
func historyPath(dir string, key types.NamespacedName) string {
	return filepath.Join(dir, key.Namespace+"_"+key.Name+historyFileSuffix)
}

func parseKey(s string) (types.NamespacedName, bool) {
	ns, name, ok := strings.Cut(s, "/")
	return types.NamespacedName{Namespace: ns, Name: name}, ok && ns != "" && name != ""
}

// ReadHistory reads the history of key from the store in dir without
// opening it (for the mirrorlet history command).
func ReadHistory(dir string, key types.NamespacedName) (History, error) {
	h, err := readHistory(historyPath(dir, key))
	if err != nil {
		return History{}, err
	}
	return *h, nil
}

func readHistory(path string) (*History, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading revisions: %w", err)
	}
	var h History
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("decoding revisions %s: %w", path, err)
	}
	return &h, nil
}
