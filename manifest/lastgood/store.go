package lastgood

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Entry is one saved manifest.
type Entry struct {
	// Key is the source's key: a manifest path, or a URL and pod name.
	Key string `json:"key"`
	// Data is the manifest as it was when it was last good.
	Data []byte `json:"data"`
	// Saved is when it was written.
	Saved time.Time `json:"saved"`
}

// Store is a directory of saved manifests. It is safe for concurrent use.
type Store struct {
	dir string

	mu sync.Mutex
	// sums holds the content hash of every entry on disk, by key.
	sums map[string][32]byte
}

// Open opens (creating it, mode 0700) the store in dir and reads what it
// holds. Unreadable entries are removed: they cannot be trusted.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating last-good manifest store %s: %w", dir, err)
	}
	s := &Store{dir: dir, sums: map[string][32]byte{}}
	entries, err := s.read()
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		s.sums[e.Key] = sha256.Sum256(e.Data)
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Put saves data as the last good content of key, unless it is already
// what the store holds.
func (s *Store) Put(key string, data []byte) error {
	sum := sha256.Sum256(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.sums[key]; ok && old == sum {
		return nil
	}
	b, err := json.Marshal(Entry{Key: key, Data: data, Saved: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("encoding last-good manifest %s: %w", key, err)
	}
	if err := writeAtomic(s.path(key), b); err != nil {
		return fmt.Errorf("saving last-good manifest %s: %w", key, err)
	}
	s.sums[key] = sum
	return nil
}

// Delete forgets key. Deleting a missing key is not an error.
func (s *Store) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing last-good manifest %s: %w", key, err)
	}
	delete(s.sums, key)
	return syncDir(s.dir)
}

// Get returns the saved entry of key.
func (s *Store) Get(key string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := readEntry(s.path(key))
	if err != nil || e.Key != key {
		return Entry{}, false
	}
	return e, true
}

// Keys returns every saved key, sorted.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.sums))
	for k := range s.sums {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// path is the file of key: named by a hash, as keys are paths and URLs.
func (s *Store) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:16])+".json")
}

func (s *Store) read() ([]Entry, error) {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("reading last-good manifest store %s: %w", s.dir, err)
	}
	var out []Entry
	for _, n := range names {
		path := filepath.Join(s.dir, n.Name())
		if !strings.HasSuffix(n.Name(), ".json") {
			_ = os.Remove(path) // a temporary file left by a crash
			continue
		}
		e, err := readEntry(path)
		if err != nil || path != s.path(e.Key) {
			_ = os.Remove(path)
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func readEntry(path string) (Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("decoding %s: %w", path, err)
	}
	return e, nil
}

// writeAtomic replaces path with data: written to a temporary file in the
// same directory, fsynced, renamed, and the directory fsynced.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // no-op after the rename
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// WriteAtomic replaces path with data atomically and durably, as the
// store writes its entries (for other stores under the root directory).
func WriteAtomic(path string, data []byte) error { return writeAtomic(path, data) }
