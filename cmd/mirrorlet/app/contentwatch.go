package app

import (
	"fmt"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/contentwatch"
	"github.com/mirrorlet/mirrorlet/controllers/staticpod"
)

var _ staticpod.FileWatcher = (*contentwatch.Watcher)(nil)

// newFileWatcher makes the watcher of the host files whose change restarts
// a static pod (mirrorlet.io/restart-on-change): a change wakes the worker
// of that pod (engine, once set).
func (a *agent) newFileWatcher(engine *atomic.Pointer[staticpod.Engine]) (*contentwatch.Watcher, error) {
	w, err := contentwatch.New(contentwatch.Config{
		Log: a.opts.Log.WithName("contentwatch"),
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
