package pleg

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

type events struct {
	mu   sync.Mutex
	uids []types.UID
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.uids = append(e.uids, ev.UID)
}

func (e *events) take() []types.UID {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.uids
	e.uids = nil
	return out
}

func runPod(t *testing.T, rt *fake.Runtime, uid string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-" + uid, Namespace: "default", UID: types.UID(uid)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	id, err := rt.RunSandbox(context.Background(), pod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(context.Background(), pod, id, &pod.Spec.Containers[0], 0); err != nil {
		t.Fatal(err)
	}
}

// A relist reports exactly the UIDs whose sandboxes or containers changed.
func TestRelistEmitsPerUIDChanges(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	rt := fake.New(clk)
	c, err := New(Config{Runtime: rt, Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	evs := &events{}
	c.Subscribe(evs.add)
	runPod(t, rt, "a")
	runPod(t, rt, "b")
	c.Relist(t.Context())
	if got := evs.take(); len(got) != 2 {
		t.Fatalf("first relist: events %v, want a and b", got)
	}
	c.Relist(t.Context())
	if got := evs.take(); len(got) != 0 {
		t.Fatalf("relist without change: events %v", got)
	}
	if err := rt.Exit("b", "c", 1); err != nil {
		t.Fatal(err)
	}
	c.Relist(t.Context())
	if got := evs.take(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("after b's container exited: events %v, want [b]", got)
	}
	if e := c.Get("b"); len(e.Pods) != 1 || e.Pods[0].Latest("c").ExitCode != 1 {
		t.Fatalf("cache entry of b: %+v", e)
	}
	pods, err := c.ListPods(t.Context())
	if err != nil || len(pods) != 2 {
		t.Fatalf("ListPods: %d pods, %v", len(pods), err)
	}
	if keys := c.Keys(); len(keys) != 2 {
		t.Fatalf("keys %v", keys)
	}
}

// WaitNewer returns only after a refresh that started after the mark, and
// a targeted refresh covers just the UIDs asked for.
func TestWaitNewerWaitsForAFresherCache(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	rt := fake.New(clk)
	c, err := New(Config{Runtime: rt, Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	runPod(t, rt, "a")
	c.Relist(t.Context())
	mark := c.Mark()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.WaitNewer(ctx, mark, "a"); err == nil {
		t.Fatalf("WaitNewer returned without a refresh newer than the mark")
	}
	lists := rt.Lists()
	go c.Run(t.Context())
	if err := c.WaitNewer(t.Context(), c.Mark(), "a"); err != nil {
		t.Fatal(err)
	}
	mark = c.Mark()
	if err := c.WaitNewer(t.Context(), mark, "a"); err != nil {
		t.Fatal(err)
	}
	if got := rt.Lists() - lists; got != 1 {
		t.Errorf("%d full relists, want 1 (at start; the rest targeted)", got)
	}
}

// streamer is a fake runtime whose event stream a test turns on and off.
type streamer struct {
	*fake.Runtime
	on      atomic.Bool
	changes chan types.UID
}

func (s *streamer) StreamsEvents() bool       { return s.on.Load() }
func (s *streamer) Changes() <-chan types.UID { return s.changes }
func (s *streamer) send(uid types.UID)        { s.changes <- uid }
func (s *streamer) waitLists(t *testing.T, n int) {
	t.Helper()
	waitUntil(t, func() bool { return s.Lists() >= n })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatal("condition not met within 5s")
	}
}

// The cache is the only lister of the runtime: it relists every second
// while the runtime has no event stream (containerd 1.6), every 10 s while
// it streams, and at once, then every second, when the stream breaks (the
// runtime sends "").
func TestRelistPeriodFollowsEventStream(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	rt := &streamer{Runtime: fake.New(clk), changes: make(chan types.UID)}
	c, err := New(Config{Runtime: rt, Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(t.Context())
	step := func(d time.Duration) {
		waitUntil(t, clk.HasWaiters)
		clk.Step(d)
	}
	rt.waitLists(t, 1)
	step(time.Second)
	rt.waitLists(t, 2) // no stream: every second
	rt.on.Store(true)
	step(time.Second)
	rt.waitLists(t, 3) // the period is now 10 s
	step(5 * time.Second)
	rt.on.Store(false)
	rt.send("") // the stream broke
	rt.waitLists(t, 4)
	step(time.Second)
	rt.waitLists(t, 5)
	if got := rt.Lists(); got != 5 {
		t.Errorf("%d lists, want 5", got)
	}
}
