package app

import (
	"fmt"
	"path/filepath"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/contentwatch"
	"github.com/mirrorlet/mirrorlet/controllers/staticpod"
)

var _ staticpod.FileWatcher = (*contentwatch.Watcher)(nil)

// newFileWatcher makes the watcher of the host files whose change restarts
// a static pod (mirrorlet.io/restart-on-change): a change wakes the worker
// of that pod (engine, once set). The content each pod version runs with is
// kept under --root-dir, so a change made while mirrorlet was stopped
// restarts the pod when it starts again.
func (a *agent) newFileWatcher(engine *atomic.Pointer[staticpod.Engine]) (*contentwatch.Watcher, error) {
	state := ""
	if a.opts.RootDir != "" {
		state = filepath.Join(a.opts.RootDir, "restart-on-change")
	}
	w, err := contentwatch.New(contentwatch.Config{
		Log: a.opts.Log.WithName("contentwatch"), StateDir: state,
		OnChange: func(uid types.UID) {
			if e := engine.Load(); e != nil {
				e.OnChange(uid)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("setting up the host file watcher: %w", err)
	}
	return w, nil
}
