package staticpod

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/prober"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/pleg"
)

// Prober runs the probes of static pods' containers. Optional: with no
// Prober, a running container counts as started and ready, and no liveness
// check ever fails.
type Prober interface {
	// UpdatePod tells the prober what runs for pod (the desired pod, UID =
	// spec hash) after each sync of its worker: it starts probe workers for
	// containers newly running, and drops those of containers no longer
	// running. running lists the running attempt of each container (by
	// name) with its container ID, start time, and the pod IP ("" for
	// hostNetwork pods: the prober then uses the node IP).
	UpdatePod(pod *corev1.Pod, running []prober.Running)
	// RemovePod stops every probe of the pod version uid.
	RemovePod(uid types.UID)
	// Status returns the probe results of one container attempt.
	Status(uid types.UID, containerID string) prober.Status
}

// EventSink records Events for users on a static pod's mirror.
type EventSink interface {
	// Event records an Event on the mirror of the static pod key, about
	// the named container of it ("" for the pod as a whole: the kubelet's
	// fieldPath spec.containers{name}, so that Events of two containers
	// are two series); it must not block (it may drop the Event when the
	// API is unreachable).
	Event(pod types.NamespacedName, container, eventType, reason, message string)
}

// DefaultResyncPeriod is the kubelet's default --sync-frequency.
const DefaultResyncPeriod = time.Minute

// Config configures an Engine.
type Config struct {
	Runtime mruntime.Runtime
	// Cache is the runtime cache the workers read. Default: a new one over
	// Runtime, run by Run.
	Cache   *pleg.Cache
	Desired *desired.Set
	States  *podstate.Store
	// Prober runs probes; nil: none (running means ready).
	Prober Prober
	// Events receives Events for mirrors (Killing); nil: dropped.
	Events EventSink
	Log    logr.Logger
	// Clock drives back-off and timestamps. Default: the real clock.
	Clock clock.WithTicker
	// ResyncPeriod is how often every worker syncs even without a change
	// (the kubelet's --sync-frequency). Default 1m. Nothing waits for it:
	// runtime changes (cache events), manifest changes, probe results,
	// host file changes and the end of a back-off each wake the worker
	// concerned; the resync only catches what an event may have missed.
	ResyncPeriod time.Duration
	// BackoffInitial and BackoffMax bound the restart back-off. Defaults
	// 10s and 5m, as in the kubelet.
	BackoffInitial, BackoffMax time.Duration

	// Files watches host files for restarts on change
	// (mirrorlet.io/restart-on-change); nil: none.
	Files FileWatcher
}

// Engine runs the pod workers.
type Engine struct {
	cfg      Config
	ownCache bool
	backoff  *flowcontrol.Backoff
	runCtx   context.Context
	mu       sync.Mutex
	ready    bool
	workers  map[types.NamespacedName]*worker
	uidKeys  map[types.UID]types.NamespacedName
	wg       sync.WaitGroup
	// gated are the pods waiting for others to be Ready (startorder.go).
	gated gatedKeys
}

// New validates and defaults cfg and returns an Engine.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.Runtime == nil:
		return nil, errors.New("runtime is required")
	case cfg.Desired == nil:
		return nil, errors.New("desired set is required")
	case cfg.States == nil:
		return nil, errors.New("pod state store is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.ResyncPeriod <= 0 {
		cfg.ResyncPeriod = DefaultResyncPeriod
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = 10 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	if cfg.Events == nil {
		cfg.Events = discardEvents{}
	}
	e := &Engine{cfg: cfg, workers: map[types.NamespacedName]*worker{}, uidKeys: map[types.UID]types.NamespacedName{}}
	if cfg.Cache == nil {
		c, err := pleg.New(pleg.Config{Runtime: cfg.Runtime, Clock: cfg.Clock, Log: cfg.Log.WithName("pleg")})
		if err != nil {
			return nil, err
		}
		e.cfg.Cache, e.ownCache = c, true
	}
	e.backoff = flowcontrol.NewBackOff(cfg.BackoffInitial, cfg.BackoffMax)
	e.backoff.Clock = cfg.Clock
	return e, nil
}

type discardEvents struct{}

func (discardEvents) Event(types.NamespacedName, string, string, string, string) {}

// Run runs the workers until ctx ends, then waits for them. It needs no API
// server. No worker starts before the runtime cache has listed once.
func (e *Engine) Run(ctx context.Context) error {
	if e.ownCache {
		go e.cfg.Cache.Run(ctx)
	}
	e.mu.Lock()
	e.runCtx = ctx
	e.mu.Unlock()
	defer e.wg.Wait()
	cancelDesired := e.cfg.Desired.Subscribe(e.wake)
	defer cancelDesired()
	cancelCache := e.cfg.Cache.Subscribe(func(ev pleg.Event) {
		e.learn(ev.UID, ev.Key)
		e.wake(ev.Key)
	})
	defer cancelCache()
	defer e.cfg.States.Subscribe(e.wakeGated)()
	if err := e.cfg.Cache.WaitNewer(ctx, 0); err != nil {
		return nil //nolint:nilerr // ctx ended before the runtime answered
	}
	e.mu.Lock()
	e.ready = true
	e.mu.Unlock()
	e.wakeAll()
	e.wg.Go(func() { e.sweepOrphanData(ctx) })
	ticker := e.cfg.Clock.NewTicker(e.cfg.ResyncPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
			e.backoff.GC()
			e.wakeAll()
		}
	}
}

// OnChange wakes the worker of the pod version uid (the prober calls it
// when a probe result changes).
func (e *Engine) OnChange(uid types.UID) {
	e.mu.Lock()
	key, ok := e.uidKeys[uid]
	e.mu.Unlock()
	if ok {
		e.wake(key)
	}
}

func (e *Engine) learn(uid types.UID, key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.uidKeys[uid] = key
}

func (e *Engine) forget(uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.uidKeys, uid)
}

// wakeAll wakes the worker of every desired pod and every pod the runtime
// runs, once each (a pod both desired and running syncs once).
func (e *Engine) wakeAll() {
	keys := sets.New(e.cfg.Cache.Keys()...)
	for _, sp := range e.cfg.Desired.List() {
		keys.Insert(sp.Key())
	}
	for key := range keys {
		e.wake(key)
	}
}

// wake starts the worker of key if it has none, and wakes it.
func (e *Engine) wake(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.ready || e.runCtx.Err() != nil {
		return
	}
	w, ok := e.workers[key]
	if !ok {
		w = newWorker(e, key)
		e.workers[key] = w
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			w.run(e.runCtx)
		}()
	}
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

// end removes w unless it was woken meanwhile; it reports whether w must
// end.
func (e *Engine) end(w *worker) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(w.wakeCh) > 0 {
		return false
	}
	delete(e.workers, w.key)
	return true
}
