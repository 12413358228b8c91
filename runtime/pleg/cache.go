package pleg

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Config configures a Cache.
type Config struct {
	Runtime mruntime.Runtime
	// Clock times the periodic relist and the refresh times. Default: real.
	Clock clock.WithTicker
	// RelistPeriod is how often everything is relisted. Default 1s.
	RelistPeriod time.Duration
	// StreamingRelistPeriod replaces RelistPeriod while the runtime says
	// its Changes are event-driven (mruntime.EventStreamer). Default 10s.
	StreamingRelistPeriod time.Duration
	Log                   logr.Logger
}

// Entry is what the cache holds for one pod UID.
type Entry struct {
	// Pods are the sandboxes of the UID, with their containers; empty when
	// the runtime runs none.
	Pods []mruntime.Pod
	// Refreshed is when the refresh that last read the UID started.
	Refreshed time.Time
}

// Event says the runtime state of one pod UID changed; Key is its static
// pod (namespace and name), from the old or new entry.
type Event struct {
	UID types.UID
	Key types.NamespacedName
}

// Cache is the runtime cache. Create it with New and run it with Run.
type Cache struct {
	cfg      Config
	requests chan struct{}

	mu      sync.Mutex
	entries map[types.UID]*entry
	// byKey indexes UIDs by static pod key.
	byKey map[types.NamespacedName]map[types.UID]bool
	// started numbers refreshes; full is the number of the last completed
	// full relist, and refreshed of each UID the last refresh covering it.
	started, full uint64
	refreshed     map[types.UID]uint64
	fullTime      time.Time
	listed        bool
	lastErr       error
	pending       map[types.UID]bool
	pendingAll    bool
	// done is closed and replaced at the end of every refresh.
	done        chan struct{}
	subscribers map[int]func(Event)
	nextSub     int
}

type entry struct {
	pods      []mruntime.Pod
	refreshed time.Time
}

// New validates and defaults cfg and returns an empty Cache.
func New(cfg Config) (*Cache, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("runtime is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.RelistPeriod <= 0 {
		cfg.RelistPeriod = time.Second
	}
	if cfg.StreamingRelistPeriod <= 0 {
		cfg.StreamingRelistPeriod = 10 * time.Second
	}
	return &Cache{
		cfg: cfg, requests: make(chan struct{}, 1),
		entries: map[types.UID]*entry{}, byKey: map[types.NamespacedName]map[types.UID]bool{},
		refreshed: map[types.UID]uint64{}, pending: map[types.UID]bool{},
		done: make(chan struct{}), subscribers: map[int]func(Event){},
	}, nil
}

// Run relists until ctx ends: at once, every relist period, and for the
// UIDs the runtime's Changes name ("": everything) or workers ask for. It
// is the only reader of the runtime's pod list. When the runtime's event
// stream goes down, the shorter period applies at once.
func (c *Cache) Run(ctx context.Context) {
	c.Relist(ctx)
	period := c.period()
	timer := c.cfg.Clock.NewTimer(period)
	defer timer.Stop()
	changes := c.cfg.Runtime.Changes()
	for {
		select {
		case <-ctx.Done():
			return
		case uid := <-changes:
			c.request(uid)
			continue
		case <-c.requests:
			c.refreshPending(ctx)
			if p := c.period(); p < period {
				period = p
				timer.Reset(period)
			}
			continue
		case <-timer.C():
		}
		c.Relist(ctx)
		period = c.period()
		timer.Reset(period)
	}
}

// period is the full relist period: longer while the runtime streams events.
func (c *Cache) period() time.Duration {
	if s, ok := c.cfg.Runtime.(mruntime.EventStreamer); ok && s.StreamsEvents() {
		return c.cfg.StreamingRelistPeriod
	}
	return c.cfg.RelistPeriod
}

// request asks the loop to refresh uid ("" for everything).
func (c *Cache) request(uid types.UID) {
	c.mu.Lock()
	if uid == "" {
		c.pendingAll = true
	} else {
		c.pending[uid] = true
	}
	c.mu.Unlock()
	select {
	case c.requests <- struct{}{}:
	default:
	}
}

// refreshPending refreshes what was asked for since the last refresh.
func (c *Cache) refreshPending(ctx context.Context) {
	c.mu.Lock()
	uids := slices.Collect(maps.Keys(c.pending))
	all := c.pendingAll
	c.pending, c.pendingAll = map[types.UID]bool{}, false
	c.mu.Unlock()
	lister, ok := c.cfg.Runtime.(mruntime.UIDLister)
	if all || !ok || len(uids) > 8 {
		c.Relist(ctx)
		return
	}
	for _, uid := range uids {
		c.refreshUID(ctx, lister, uid)
	}
}

// Relist lists the whole runtime once and updates the cache.
func (c *Cache) Relist(ctx context.Context) {
	n, now := c.begin()
	pods, err := c.cfg.Runtime.ListPods(ctx)
	if err != nil {
		c.cfg.Log.Error(err, "Relisting the runtime failed; keeping the last known pods")
		c.finish(func() { c.lastErr = fmt.Errorf("listing runtime pods: %w", err) })
		return
	}
	byUID := map[types.UID][]mruntime.Pod{}
	for _, p := range pods {
		byUID[p.UID] = append(byUID[p.UID], p)
	}
	var events []Event
	c.finish(func() {
		for uid := range c.entries {
			if _, ok := byUID[uid]; !ok {
				events = c.setLocked(uid, nil, now, events)
			}
		}
		for uid, ps := range byUID {
			events = c.setLocked(uid, ps, now, events)
		}
		c.full, c.fullTime, c.listed, c.lastErr = n, now, true, nil
		for uid, r := range c.refreshed {
			if r <= n {
				delete(c.refreshed, uid)
			}
		}
	})
	c.notify(events)
}

func (c *Cache) refreshUID(ctx context.Context, lister mruntime.UIDLister, uid types.UID) {
	n, now := c.begin()
	pods, err := lister.ListPodsOf(ctx, uid)
	if err != nil {
		c.cfg.Log.Error(err, "Listing a pod in the runtime failed; relisting everything next", "uid", uid)
		c.finish(func() {})
		c.request("")
		return
	}
	var events []Event
	c.finish(func() {
		events = c.setLocked(uid, pods, now, events)
		c.refreshed[uid] = n
	})
	c.notify(events)
}

// begin numbers a refresh that starts now.
func (c *Cache) begin() (uint64, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started++
	return c.started, c.cfg.Clock.Now()
}

// finish applies update under the lock and wakes waiters.
func (c *Cache) finish(update func()) {
	c.mu.Lock()
	update()
	close(c.done)
	c.done = make(chan struct{})
	c.mu.Unlock()
}

// setLocked stores the pods of uid and appends an event if they changed.
// Unchanged pods (the common case of a relist) keep the entry as it is
// but for its refresh time: nothing is allocated.
func (c *Cache) setLocked(uid types.UID, pods []mruntime.Pod, now time.Time, events []Event) []Event {
	normalize(pods)
	old, had := c.entries[uid]
	if len(pods) == 0 {
		if !had {
			return events
		}
		delete(c.entries, uid)
		c.unindex(uid, old.pods)
		return append(events, Event{UID: uid, Key: keyOf(old.pods)})
	}
	if had && mruntime.PodsEqual(old.pods, pods) {
		old.refreshed = now
		return events
	}
	if had {
		c.unindex(uid, old.pods)
	}
	c.entries[uid] = &entry{pods: pods, refreshed: now}
	key := keyOf(pods)
	if c.byKey[key] == nil {
		c.byKey[key] = map[types.UID]bool{}
	}
	c.byKey[key][uid] = true
	return append(events, Event{UID: uid, Key: key})
}

func (c *Cache) unindex(uid types.UID, pods []mruntime.Pod) {
	key := keyOf(pods)
	delete(c.byKey[key], uid)
	if len(c.byKey[key]) == 0 {
		delete(c.byKey, key)
	}
}

func (c *Cache) notify(events []Event) {
	if len(events) == 0 {
		return
	}
	c.mu.Lock()
	subs := slices.Collect(maps.Values(c.subscribers))
	c.mu.Unlock()
	for _, e := range events {
		for _, fn := range subs {
			fn(e)
		}
	}
}

// normalize orders sandboxes and containers so that equal states compare
// equal.
func normalize(pods []mruntime.Pod) {
	slices.SortFunc(pods, func(a, b mruntime.Pod) int { return strings.Compare(a.SandboxID, b.SandboxID) })
	for i := range pods {
		slices.SortFunc(pods[i].Containers, func(a, b mruntime.Container) int { return strings.Compare(a.ID, b.ID) })
	}
}

func keyOf(pods []mruntime.Pod) types.NamespacedName {
	if len(pods) == 0 {
		return types.NamespacedName{}
	}
	return types.NamespacedName{Namespace: pods[0].Namespace, Name: pods[0].Name}
}
