package staticpod

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// worker is the pod worker of one static pod key: one goroutine, one sync
// at a time. Its fields are its own (no lock): only its goroutine uses them.
type worker struct {
	e      *Engine
	key    types.NamespacedName
	wakeCh chan struct{}
	// attempts holds, per pod UID and container, the highest attempt
	// number seen or started.
	attempts map[types.UID]map[string]uint32
	// livenessKilled holds the container IDs this worker killed because
	// their liveness probe failed: they restart whatever their exit code.
	livenessKilled map[string]bool
	// uids holds every version of the pod seen, whose data goes when the
	// version is no longer desired.
	uids map[types.UID]bool
	// pullErrs holds the last image pull error of each container (by
	// back-off key), shown until the first retry.
	pullErrs map[string]podstate.Waiting
	// createErrs holds the last error creating each container, shown
	// while its back-off lasts.
	createErrs map[string]podstate.Waiting
	// failedAt holds when each pull or create back-off (by key) last
	// began, so that a sync made meanwhile waits for the time left, not
	// for a whole back-off again.
	failedAt map[string]time.Time
	// published is the runtime sandbox last published to the pod state, and
	// previous the one before it, whose last attempts are carried over
	// while a new sandbox has none yet.
	published, previous *mruntime.Pod
	// errDelay is the retry delay after a failed sync (100ms doubling to 10s).
	errDelay time.Duration
	// files and gate: restarts on host file change (hostfiles.go) and
	// start order (startorder.go).
	files fileState
	gate  gateState
}

func newWorker(e *Engine, key types.NamespacedName) *worker {
	return &worker{
		e: e, key: key, wakeCh: make(chan struct{}, 1),
		attempts: map[types.UID]map[string]uint32{}, livenessKilled: map[string]bool{}, uids: map[types.UID]bool{},
		pullErrs: map[string]podstate.Waiting{}, createErrs: map[string]podstate.Waiting{}, failedAt: map[string]time.Time{},
	}
}

// logger returns a logger with the pod's key. It is made for each use,
// not kept: a logger with values holds ~2.5 KB (zap clones its encoder),
// 2.5 MB at 1,000 pods, and a worker logs only when it acts.
func (w *worker) logger() logr.Logger {
	return w.e.cfg.Log.WithValues("pod", w.key)
}

// result is what one sync did and wants.
type result struct {
	// acted: the sync changed the runtime; the next sync waits for a cache
	// refresh of uids newer than the change.
	acted bool
	uids  []types.UID
	// requeue: sync again after this long (a back-off ends).
	requeue time.Duration
	// done: nothing is desired or runs for the key any more.
	done bool
}

func (w *worker) run(ctx context.Context) {
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if !w.wait(ctx, timer) {
			return
		}
		res, err := w.sync(ctx)
		if ctx.Err() != nil {
			return
		}
		if res.done && w.e.end(w) {
			return
		}
		delay := w.next(res, err)
		if res.acted {
			mark := w.e.cfg.Cache.Mark()
			if err := w.e.cfg.Cache.WaitNewer(ctx, mark, res.uids...); err != nil {
				return
			}
			if err == nil {
				w.poke() // decide again on what the action changed
			}
		}
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if delay > 0 {
			timer = w.e.cfg.Clock.NewTimer(delay)
		}
	}
}

// next returns when to sync again at the latest (0: only when woken).
func (w *worker) next(res result, err error) time.Duration {
	if err != nil {
		w.logger().Error(err, "Syncing pod failed; retrying", "after", w.errDelay)
		w.errDelay = min(max(2*w.errDelay, 100*time.Millisecond), 10*time.Second)
		return w.errDelay
	}
	w.errDelay = 0
	return res.requeue
}

// wait blocks until the worker is woken, its timer fires or ctx ends.
func (w *worker) wait(ctx context.Context, timer clock.Timer) bool {
	var fired <-chan time.Time
	if timer != nil {
		fired = timer.C()
	}
	select {
	case <-ctx.Done():
		return false
	case <-w.wakeCh:
	case <-fired:
	}
	return true
}

func (w *worker) poke() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}
