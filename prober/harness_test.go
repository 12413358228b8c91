package prober

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

const testUID = types.UID("uid-1")

var testKey = types.NamespacedName{Namespace: "default", Name: "web-node1"}

// probeEvent is one probe a worker ran.
type probeEvent struct {
	pt          probeType
	containerID string
	r           result
}

type event struct{ eventType, reason, message, container string }

// sink records Events.
type sink struct {
	mu     sync.Mutex
	events []event
}

func (s *sink) Event(pod types.NamespacedName, container, eventType, reason, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pod == testKey {
		s.events = append(s.events, event{eventType, reason, message, container})
	}
}

func (s *sink) all() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}

// harness is a Manager on a fake clock whose probes the test follows.
type harness struct {
	t       *testing.T
	clk     *testingclock.FakeClock
	m       *Manager
	rt      *fake.Runtime
	probed  chan probeEvent
	events  *sink
	changes chan types.UID
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	h := &harness{
		t: t, clk: testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		rt: fake.New(nil), probed: make(chan probeEvent, 100), events: &sink{},
		changes: make(chan types.UID, 100),
	}
	cfg := Config{
		Execer: h.rt, NodeIP: "127.0.0.1", Clock: h.clk, Log: testr.New(t), Events: h.events,
		OnChange: func(uid types.UID) { h.changes <- uid },
		Jitter:   func(time.Duration) time.Duration { return 0 },
	}
	for _, f := range mutate {
		f(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.probed = func(pt probeType, id string, r result) { h.probed <- probeEvent{pt, id, r} }
	h.m = m
	t.Cleanup(m.Stop)
	return h
}

// run tells the Manager that container c of a one-container pod runs as
// attempt id, started now, with the pod IP 127.0.0.1.
func (h *harness) run(c corev1.Container, ids ...string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testKey.Namespace, Name: testKey.Name, UID: testUID},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
	var running []Running
	for _, id := range ids {
		running = append(running, Running{Name: c.Name, ID: id, StartedAt: h.clk.Now(), PodIP: "127.0.0.1"})
	}
	h.m.UpdatePod(pod, running)
	return pod
}

// next waits for the next probe and returns it.
func (h *harness) next() probeEvent {
	h.t.Helper()
	select {
	case e := <-h.probed:
		return e
	case <-time.After(10 * time.Second):
		h.t.Fatal("no probe within 10s")
	}
	return probeEvent{}
}

// expect waits for the next probe and checks its type and result.
func (h *harness) expect(pt probeType, r result) {
	h.t.Helper()
	if e := h.next(); e.pt != pt || e.r != r {
		h.t.Fatalf("probe: got %s %s, want %s %s", e.pt, e.r, pt, r)
	}
}

// none checks that no probe ran (waiting a little: workers are goroutines).
func (h *harness) none() {
	h.t.Helper()
	select {
	case e := <-h.probed:
		h.t.Fatalf("unexpected probe %s %s of %s", e.pt, e.r, e.containerID)
	case <-time.After(200 * time.Millisecond):
	}
}

// step waits until n workers wait on the clock, then moves it by d.
func (h *harness) step(n int, d time.Duration) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(h.t.Context(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return h.clk.Waiters() >= n, nil })
	if err != nil {
		h.t.Fatalf("waiting for %d workers to wait on the clock (%d do): %v", n, h.clk.Waiters(), err)
	}
	h.clk.Step(d)
}

// status waits until the attempt's Status satisfies ok.
func (h *harness) status(id string, ok func(Status) bool) Status {
	h.t.Helper()
	var s Status
	err := wait.PollUntilContextTimeout(h.t.Context(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { s = h.m.Status(testUID, id); return ok(s), nil })
	if err != nil {
		h.t.Fatalf("status of %s: %+v", id, s)
	}
	return s
}

func ready(s Status) bool    { return s.Ready }
func notReady(s Status) bool { return !s.Ready }
func failed(s Status) bool   { return s.LivenessFailed }
func hostPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
