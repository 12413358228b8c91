package app

import (
	"context"
	"os"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/controllers/podstatus"
	"github.com/mirrorlet/mirrorlet/logdir"
	"github.com/mirrorlet/mirrorlet/runtime/cri"
)

// setupLogDir watches the pod log directory when the runtime writes
// container logs there (CRI): while it is full or not writable, every
// mirror says so (condition mirrorlet.io/LogsWritable), each gets a
// Warning Event, and the log has a line; containers keep running.
func (a *agent) setupLogDir(ctx context.Context, g *errgroup.Group) error {
	if _, ok := a.runtime.(*cri.Runtime); !ok {
		return nil
	}
	dir := a.opts.PodLogsDir
	if dir == "" {
		dir = defaultPodLogsDir
	}
	// The runtime writes there anyway; a failure shows in the first check.
	_ = os.MkdirAll(dir, 0o755)
	c, err := logdir.New(logdir.Config{Dir: dir})
	if err != nil {
		return err
	}
	a.logDir = c
	c.Subscribe(func() { a.reportLogDir(dir, c.Problem()) })
	g.Go(func() error { c.Run(ctx); return nil })
	return nil
}

// reportLogDir logs a change of the log directory's state and records it
// on every static pod's mirror. It never blocks.
func (a *agent) reportLogDir(dir string, problem error) {
	log := a.opts.Log.WithName("logdir")
	eventType, reason, message := corev1.EventTypeWarning, "LogDirectoryUnwritable", ""
	if problem == nil {
		if !a.logDirBad.Swap(false) {
			return
		}
		log.Info("Pod log directory takes container logs again", "dir", dir)
		eventType, reason, message = corev1.EventTypeNormal, "LogDirectoryWritable", "pod log directory "+dir+" takes container logs again"
	} else {
		a.logDirBad.Store(true)
		log.Error(problem, "Pod log directory does not take container logs; containers keep running", "dir", dir)
		message = problem.Error()
	}
	for _, sp := range a.desired.List() {
		a.events.Event(sp.Key(), "", eventType, reason, message)
	}
}

// logDirStatus is the checker for the mirror reconciler, nil without one.
func (a *agent) logDirStatus() podstatus.LogDirStatus {
	if a.logDir == nil {
		return nil
	}
	return a.logDir
}
