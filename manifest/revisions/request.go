package revisions

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
)

// A rollback request is a file the mirrorlet rollback command writes into
// RequestDir of the store's directory and the daemon consumes: the daemon
// runs as root and the directory is root's (mode 0700), so writing there is
// the authorisation, and the command works whatever the health address.
// The daemon answers each request with a result file, which the command
// reads and removes.

// Request asks the daemon to pin a revision.
type Request struct {
	// Key is <namespace>/<name> of the static pod.
	Key string `json:"key"`
	// Revision is the revision to run; 0: the one before the running one.
	Revision int64 `json:"revision"`
}

// Result is the daemon's answer to a Request.
type Result struct {
	Key string `json:"key"`
	// Revision is the revision that runs now, when Error is empty.
	Revision int64  `json:"revision,omitempty"`
	Error    string `json:"error,omitempty"`
}

const (
	requestSuffix = ".request"
	resultSuffix  = ".result"
)

// RequestDir is the directory of requests and results under the store's
// directory.
func RequestDir(storeDir string) string { return filepath.Join(storeDir, "requests") }

func requestPath(storeDir string, key types.NamespacedName, suffix string) string {
	return filepath.Join(RequestDir(storeDir), key.Namespace+"_"+key.Name+suffix)
}

// WriteRequest writes r for the daemon, removing an old result of its pod.
func WriteRequest(storeDir string, key types.NamespacedName, r Request) error {
	if err := os.MkdirAll(RequestDir(storeDir), 0o700); err != nil {
		return fmt.Errorf("creating rollback request directory: %w", err)
	}
	if err := os.Remove(requestPath(storeDir, key, resultSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing an old rollback result: %w", err)
	}
	return writeJSON(requestPath(storeDir, key, requestSuffix), r)
}

// WithdrawRequest removes the request of key, if the daemon has not taken
// it yet.
func WithdrawRequest(storeDir string, key types.NamespacedName) error {
	err := os.Remove(requestPath(storeDir, key, requestSuffix))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("withdrawing the rollback request: %w", err)
	}
	return nil
}

// TakeRequests reads and removes every pending request.
func TakeRequests(storeDir string) ([]Request, error) {
	entries, err := os.ReadDir(RequestDir(storeDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading rollback requests: %w", err)
	}
	var out []Request
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), requestSuffix) {
			continue
		}
		path := filepath.Join(RequestDir(storeDir), e.Name())
		var r Request
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		_ = os.Remove(path)
		if err != nil {
			return out, fmt.Errorf("reading rollback request %s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// WriteResult answers the request of key.
func WriteResult(storeDir string, key types.NamespacedName, r Result) error {
	return writeJSON(requestPath(storeDir, key, resultSuffix), r)
}

// TakeResult reads and removes the answer to the request of key; ok is
// false while there is none.
func TakeResult(storeDir string, key types.NamespacedName) (r Result, ok bool, err error) {
	path := requestPath(storeDir, key, resultSuffix)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, false, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("reading rollback result %s: %w", path, err)
	}
	_ = os.Remove(path)
	return r, true, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := lastgood.WriteAtomic(path, b); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
