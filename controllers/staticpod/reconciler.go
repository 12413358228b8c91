package staticpod

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Config configures a Reconciler.
type Config struct {
	Runtime mruntime.Runtime
	Desired *desired.Set
	States  *podstate.Store
	Log     logr.Logger
	// Clock drives back-off and timestamps. Default: the real clock.
	Clock clock.WithTicker
	// ResyncPeriod is how often every pod is reconciled even without a
	// change. Default 10s.
	ResyncPeriod time.Duration
	// BackoffInitial and BackoffMax bound the restart back-off. Defaults
	// 10s and 5m, as in the kubelet.
	BackoffInitial, BackoffMax time.Duration
	// Workers is how many pods are synced at once. Default 8.
	Workers int
}

// Reconciler is the static pod reconciler.
type Reconciler struct {
	cfg     Config
	backoff *flowcontrol.Backoff

	mu sync.Mutex
	// uids maps runtime pod UIDs to their keys, for runtime change events.
	uids map[types.UID]types.NamespacedName
	// graces remembers each pod version's termination grace period, to stop
	// it with it after its manifest changed or went away.
	graces map[types.UID]time.Duration
}

// New validates and defaults cfg and returns a Reconciler.
func New(cfg Config) (*Reconciler, error) {
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
		cfg.ResyncPeriod = 10 * time.Second
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = 10 * time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	b := flowcontrol.NewBackOff(cfg.BackoffInitial, cfg.BackoffMax)
	b.Clock = cfg.Clock
	return &Reconciler{
		cfg:     cfg,
		backoff: b,
		uids:    map[types.UID]types.NamespacedName{},
		graces:  map[types.UID]time.Duration{},
	}, nil
}

// Run reconciles until ctx ends. It needs no API server.
func (r *Reconciler) Run(ctx context.Context) error {
	c, err := controller.NewTypedUnmanaged("staticpod", controller.TypedOptions[reconcile.Request]{
		Reconciler:              r,
		MaxConcurrentReconciles: r.cfg.Workers,
		Logger:                  r.cfg.Log,
		SkipNameValidation:      ptr.To(true),
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](
			100*time.Millisecond, 10*time.Second),
	})
	if err != nil {
		return fmt.Errorf("creating static pod controller: %w", err)
	}
	if err := c.Watch(source.TypedFunc[reconcile.Request](r.watch)); err != nil {
		return fmt.Errorf("watching static pods: %w", err)
	}
	return c.Start(ctx)
}

// watch feeds the controller's queue: desired set changes, runtime change
// events and a periodic resync of everything.
func (r *Reconciler) watch(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	add := func(key types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: key}) }
	cancel := r.cfg.Desired.Subscribe(add)
	go func() {
		defer cancel()
		r.resyncAll(ctx, add)
		ticker := r.cfg.Clock.NewTicker(r.cfg.ResyncPeriod)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case uid := <-r.cfg.Runtime.Changes():
				r.mu.Lock()
				key, ok := r.uids[uid]
				r.mu.Unlock()
				if ok {
					add(key)
				} else {
					r.resyncAll(ctx, add)
				}
			case <-ticker.C():
				r.resyncAll(ctx, add)
				r.backoff.GC()
			}
		}
	}()
	return nil
}

// resyncAll enqueues every desired pod and every pod the runtime runs.
func (r *Reconciler) resyncAll(ctx context.Context, add func(types.NamespacedName)) {
	for _, sp := range r.cfg.Desired.List() {
		add(sp.Key())
	}
	pods, err := r.cfg.Runtime.ListPods(ctx)
	if err != nil {
		r.cfg.Log.Error(err, "Listing runtime pods failed; will retry")
		return
	}
	for _, p := range pods {
		add(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
	}
}
