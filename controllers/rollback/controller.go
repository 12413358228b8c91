package rollback

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

// EventSink records Events for users on a static pod's mirror (the pod
// workers' sink).
type EventSink interface {
	// Event must not block; it may drop the Event.
	Event(pod types.NamespacedName, container, eventType, reason, message string)
}

// Config configures a Controller.
type Config struct {
	Desired   *desired.Set
	States    *podstate.Store
	Revisions *revisions.Store
	// Events receives the RolledBack Events; nil: dropped.
	Events EventSink
	Log    logr.Logger
	// Clock drives windows. Default: the real clock.
	Clock clock.WithTicker
	// RequestPeriod is how often rollback requests are looked for.
	// Default 1s.
	RequestPeriod time.Duration
}

// Controller judges revisions and applies rollback requests.
type Controller struct {
	cfg     Config
	queue   workqueue.TypedDelayingInterface[types.NamespacedName]
	started time.Time
	// orders holds, by pod, the revision that waited for its start order
	// (startorder.go).
	orders orderWaits
}

// New validates and defaults cfg.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.Desired == nil:
		return nil, errors.New("desired set is required")
	case cfg.States == nil:
		return nil, errors.New("pod state store is required")
	case cfg.Revisions == nil:
		return nil, errors.New("revision store is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Events == nil {
		cfg.Events = discardEvents{}
	}
	if cfg.RequestPeriod <= 0 {
		cfg.RequestPeriod = time.Second
	}
	q := workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[types.NamespacedName]{Clock: cfg.Clock})
	return &Controller{cfg: cfg, queue: q}, nil
}

type discardEvents struct{}

func (discardEvents) Event(types.NamespacedName, string, string, string, string) {}

// Run judges revisions and applies requests until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.started = c.cfg.Clock.Now()
	defer c.queue.ShutDown()
	cancelDesired := c.cfg.Desired.Subscribe(c.queue.Add)
	defer cancelDesired()
	cancelStates := c.cfg.States.Subscribe(c.queue.Add)
	defer cancelStates()
	for _, sp := range c.cfg.Desired.List() {
		c.queue.Add(sp.Key())
	}
	go c.work()
	ticker := c.cfg.Clock.NewTicker(c.cfg.RequestPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
			c.serveRequests()
		}
	}
}

func (c *Controller) work() {
	for {
		key, shutdown := c.queue.Get()
		if shutdown {
			return
		}
		if after := c.judge(key); after > 0 {
			c.queue.AddAfter(key, after)
		}
		c.queue.Done(key)
	}
}
