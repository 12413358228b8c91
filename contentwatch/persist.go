package contentwatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
)

// The baselines of each pod version are kept in Config.StateDir, one JSON
// file per pod version ({"path": "sha256", ...}), so that a change made
// while mirrorlet was stopped is seen when it starts again.

// stateFile returns the file of uid's baselines, "" when none is kept.
func (w *Watcher) stateFile(uid types.UID) string {
	if w.cfg.StateDir == "" || uid == "" || strings.ContainsAny(string(uid), `/\.`) {
		return ""
	}
	return filepath.Join(w.cfg.StateDir, string(uid)+".json")
}

// loadLocked returns the baselines saved for uid (nil when none).
func (w *Watcher) loadLocked(uid types.UID) map[string]string {
	f := w.stateFile(uid)
	if f == "" {
		return nil
	}
	data, err := os.ReadFile(f)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var out map[string]string
	if err == nil {
		err = json.Unmarshal(data, &out)
	}
	if err != nil {
		w.cfg.Log.Error(err, "Cannot read saved host file hashes; taking the current content", "file", f)
		return nil
	}
	return out
}

// saveLocked writes uid's baselines (removes them when there are none).
func (w *Watcher) saveLocked(uid types.UID) {
	f := w.stateFile(uid)
	if f == "" {
		return
	}
	pw, ok := w.pods[uid]
	if !ok {
		w.removeSaved(uid)
		return
	}
	if err := writeJSON(f, pw.baseline); err != nil {
		w.cfg.Log.Error(err, "Cannot save host file hashes; a change while mirrorlet is stopped will be missed", "file", f)
	}
}

func (w *Watcher) removeSaved(uid types.UID) {
	if f := w.stateFile(uid); f != "" {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.cfg.Log.Error(err, "Cannot remove saved host file hashes", "file", f)
		}
	}
}

// writeJSON writes v to file atomically and durably, as mirrorlet's other
// stores under --root-dir write theirs.
func writeJSON(file string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", file, err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(file), err)
	}
	if err := lastgood.WriteAtomic(file, data); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}
