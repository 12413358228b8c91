package apibackoff

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
)

var errDown = errors.New("read: connection reset by peer")

// Server states.
const (
	down        = iota // no answer: the transport fails
	authorizing        // answers 403 to everything (authorizer not synced)
	starting           // answers, /readyz 500
	up                 // answers 200
)

// server stands for the API server behind the transport: it fails or
// answers as state says, and records the path and time of each request
// that reached it.
type server struct {
	clock *clocktesting.FakeClock
	state atomic.Int32
	mu    sync.Mutex
	paths []string
	times []time.Time
}

func (s *server) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.paths = append(s.paths, req.URL.Path)
	s.times = append(s.times, s.clock.Now())
	s.mu.Unlock()
	switch s.state.Load() {
	case down:
		return nil, errDown
	case authorizing:
		return &http.Response{StatusCode: http.StatusForbidden, Body: http.NoBody}, nil
	case starting:
		if req.URL.Path == "/readyz" {
			return &http.Response{StatusCode: http.StatusInternalServerError, Body: http.NoBody}, nil
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
}

// reached returns the paths of the requests that reached the server.
func (s *server) reached() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

func (s *server) last() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.times[len(s.times)-1]
}

func newTestGate(t *testing.T) (*Gate, *server, http.RoundTripper) {
	clock := clocktesting.NewFakeClock(time.Unix(0, 0))
	g := New(Config{Clock: clock, Log: testr.New(t)})
	srv := &server{clock: clock}
	return g, srv, g.Wrap(srv)
}

func get(ctx context.Context, rt http.RoundTripper) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.example:6443/api/v1/nodes", nil)
	resp, err := rt.RoundTrip(req)
	if err == nil {
		_ = resp.Body.Close()
	}
	return err
}

// eventually polls cond with a deadline (the goroutines under test run
// on their own; the fake clock only moves when the test says so).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// callers starts n goroutines each sending a request until it gets an
// answer or ctx ends, as many clients would (reflectors, the lease
// renewer, mirror writes: client-go retries a second apart); their
// results arrive on the returned channel, and failed counts the failures
// they saw.
func callers(ctx context.Context, rt http.RoundTripper, n int, failed *atomic.Int32) <-chan error {
	out := make(chan error, n)
	for range n {
		go func() {
			for {
				err := get(ctx, rt)
				if err == nil || ctx.Err() != nil {
					out <- err
					return
				}
				failed.Add(1)
			}
		}()
	}
	return out
}

// probeOnce waits for the prober to wait, checks that its pause is base
// plus up to 25 %, and steps the clock to the probe; it returns the pause.
func probeOnce(t *testing.T, g *Gate, srv *server, base time.Duration) time.Duration {
	t.Helper()
	n := len(srv.reached())
	eventually(t, "the prober waiting", func() bool { return srv.clock.HasWaiters() && g.probeAt().After(srv.last()) })
	pause := g.probeAt().Sub(srv.last())
	if base > 0 && (pause < base || pause > base*5/4) {
		t.Errorf("pause %s, want %s plus up to 25%%", pause, base)
	}
	srv.clock.Step(pause - time.Nanosecond)
	if got := len(srv.reached()); got != n {
		t.Fatalf("%d requests reached the server before the pause ended", got-n)
	}
	srv.clock.Step(time.Nanosecond)
	eventually(t, "one probe", func() bool { return len(srv.reached()) > n })
	if p := srv.reached()[n]; p != "/readyz" {
		t.Fatalf("request %s reached the server during the outage, want only probes of /readyz", p)
	}
	return pause
}

// TestGateHoldsAndProbes: once a request gets no answer, 30 callers that
// retry without back-off reach the server not at all; the gate alone
// probes it, once per back-off step (100 ms doubling to 800 ms, each plus
// up to 25 %), keeps probing while the server refuses it (403, as a
// kube-apiserver does until its authorizer has synced) or /readyz says
// 500, and on its first 200 releases every held request at once; no
// caller saw a second failure.
func TestGateHoldsAndProbes(t *testing.T) {
	g, srv, rt := newTestGate(t)
	if err := get(t.Context(), rt); !errors.Is(err, errDown) {
		t.Fatalf("first request: %v, want the transport's error", err)
	}
	var failed atomic.Int32
	results := callers(t.Context(), rt, 30, &failed)
	for _, base := range []time.Duration{100, 200, 400, 800, 800, 800, 800, 800} {
		probeOnce(t, g, srv, base*time.Millisecond)
	}
	srv.state.Store(authorizing)
	probeOnce(t, g, srv, 800*time.Millisecond)
	srv.state.Store(starting)
	probeOnce(t, g, srv, 800*time.Millisecond)
	srv.state.Store(up)
	n := len(srv.reached())
	probeOnce(t, g, srv, 800*time.Millisecond)
	for i := range 30 {
		if err := <-results; err != nil {
			t.Fatalf("caller %d after the server answered: %v", i, err)
		}
	}
	if got := len(srv.reached()) - n - 1; got != 30 {
		t.Errorf("%d requests after the probe was answered, want the 30 held", got)
	}
	if f := failed.Load(); f != 0 {
		t.Errorf("the callers saw %d failures while held, want none", f)
	}
}

// TestGateJitter: the pauses at the cap differ (jitter), so a fleet that
// lost its API server at the same moment does not probe in step.
func TestGateJitter(t *testing.T) {
	g, srv, rt := newTestGate(t)
	_ = get(t.Context(), rt)
	seen := map[time.Duration]bool{}
	for range 16 {
		seen[probeOnce(t, g, srv, 0)] = true
	}
	if len(seen) < 10 {
		t.Errorf("%d different pauses in 16 probes: no jitter", len(seen))
	}
	srv.state.Store(up)
	probeOnce(t, g, srv, 0)
}

// TestGateRefusedProbe: a server that refuses the probe itself (403) keeps
// the gate closed for 10 s of refusals, then counts as ready.
func TestGateRefusedProbe(t *testing.T) {
	g, srv, rt := newTestGate(t)
	_ = get(t.Context(), rt)
	srv.state.Store(authorizing)
	var refused time.Duration
	for i := 0; refused < refusedFor; i++ {
		if !g.isDown() {
			t.Fatalf("the gate opened after %s of refused probes, want %s", refused, refusedFor)
		}
		pause := probeOnce(t, g, srv, 0)
		if i > 0 {
			refused += pause
		}
	}
	eventually(t, "the gate open", func() bool { return !g.isDown() })
}

// TestGateCallerCancels: a request its caller cancelled says nothing
// about the server (the gate stays open); a held request whose context
// ends returns with that error without reaching the server; any answer,
// even to a request sent before the outage, opens the gate.
func TestGateCallerCancels(t *testing.T) {
	g, srv, rt := newTestGate(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	_ = get(cancelled, rt)
	if g.isDown() {
		t.Fatal("the gate closed on a request its caller had cancelled")
	}
	_ = get(t.Context(), rt)
	if !g.isDown() {
		t.Fatal("the gate is open after a request got no answer")
	}
	ctx, cancel := context.WithCancel(t.Context())
	var failed atomic.Int32
	results := callers(ctx, rt, 5, &failed)
	n := len(srv.reached())
	cancel()
	for range 5 {
		if err := <-results; !errors.Is(err, context.Canceled) {
			t.Errorf("held request whose context ended: %v, want context.Canceled", err)
		}
	}
	if got := len(srv.reached()); got != n {
		t.Errorf("%d cancelled requests reached the server", got-n)
	}
	srv.state.Store(up)
	g.answered("test", http.StatusOK)
	if err := get(t.Context(), rt); err != nil || g.isDown() {
		t.Errorf("after an answer: request %v, gate down %v", err, g.isDown())
	}
}

func (g *Gate) probeAt() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.nextProbe
}

func (g *Gate) isDown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down
}
