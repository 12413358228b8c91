package staticpod

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/prober"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// startOnFakeClock runs an engine (default resync period) whose clock,
// runtime cache and fake runtime the test steps.
func startOnFakeClock(t *testing.T, pr Prober) (*running, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := &running{t: t, rt: fake.New(clk), set: desired.New(manifest.SourceFile)}
	var err error
	r.e, err = New(Config{Runtime: r.rt, Desired: r.set, States: podstate.NewStore(), Prober: pr, Clock: clk,
		Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, clk
}

func (p *fakeProber) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.updates
}

// step moves the fake clock by d and gives the runtime cache's relist
// that the step makes due a moment to run; it reports whether it ran (a
// step taken while the cache re-arms its timer makes none).
func step(r *running, clk *clocktesting.FakeClock, d time.Duration) bool {
	r.t.Helper()
	lists := r.rt.Lists()
	clk.Step(d)
	err := wait.PollUntilContextTimeout(r.t.Context(), 5*time.Millisecond, 500*time.Millisecond, true,
		func(context.Context) (bool, error) { return r.rt.Lists() > lists, nil })
	return err == nil
}

// An idle pod's worker syncs only at the sync frequency (1 min, the
// kubelet's): the runtime cache's relists of an unchanged runtime wake
// nobody. A crash restart and the end of its back-off need no resync.
func TestIdleWorkerSyncsOnlyAtSyncFrequency(t *testing.T) {
	pr := &fakeProber{status: map[string]prober.Status{}}
	r, clk := startOnFakeClock(t, pr)
	sp := r.load("web", "i:1")
	r.publish(sp)
	r.eventually("web running in its published state", 5*time.Second, func() bool {
		st, _ := r.e.cfg.States.Get(sp.Key())
		return st.Pod != nil && st.Pod.Latest("c") != nil && st.Pod.Latest("c").State == mruntime.ContainerRunning
	})
	syncs, start, relists := pr.count(), clk.Now(), 0
	for clk.Since(start) < 59*time.Second {
		if step(r, clk, time.Second) {
			relists++
		}
	}
	if n := pr.count() - syncs; n != 0 || relists < 30 {
		t.Fatalf("%d syncs of an idle pod within 59 s and %d relists, want 0 syncs and at least 30 relists", n, relists)
	}
	clk.SetTime(start.Add(time.Minute))
	r.eventually("one sync at the resync at 1 min", 2*time.Second, func() bool { return pr.count() == syncs+1 })
	step(r, clk, time.Second)
	if n := pr.count() - syncs; n != 1 {
		t.Errorf("%d syncs at the resync, want 1 (the pod is desired and runs: one wake)", n)
	}

	// Two crashes: the first restarts at once, the second after the 10 s
	// back-off, each woken by the cache's event and the back-off's timer.
	start = clk.Now()
	for attempt := range uint32(2) {
		if err := r.rt.Exit(sp.Pod.UID, "c", 1); err != nil {
			t.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 5*time.Second, true,
			func(context.Context) (bool, error) {
				if r.runningContainer(sp.Pod.UID, attempt+1) {
					return true, nil
				}
				clk.Step(100 * time.Millisecond)
				return false, nil
			})
		if err != nil {
			t.Fatalf("attempt %d not running after %s of fake time", attempt+1, clk.Since(start))
		}
	}
	if took := clk.Since(start); took < 10*time.Second || took >= 20*time.Second {
		t.Errorf("second restart %s after the first crash, want after the 10 s back-off and before any resync", took)
	}
}
