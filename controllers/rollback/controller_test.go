package rollback

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

var key = types.NamespacedName{Namespace: "default", Name: "web-n1"}

type recorded struct {
	mu     sync.Mutex
	events []string
}

func (r *recorded) Event(pod types.NamespacedName, _, eventType, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s %s %s: %s", pod, eventType, reason, message))
}

func (r *recorded) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

type harness struct {
	t      *testing.T
	clock  *clocktesting.FakeClock
	set    *desired.Set
	states *podstate.Store
	store  *revisions.Store
	events *recorded
	c      *Controller
}

func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, clock: clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		set: desired.New(manifest.SourceFile), states: podstate.NewStore(), events: &recorded{}}
	var err error
	h.store, err = revisions.Open(revisions.Config{Dir: t.TempDir(), Clock: h.clock, Log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	h.set.SetResolver(h.store)
	c, err := New(Config{Desired: h.set, States: h.states, Revisions: h.store, Events: h.events,
		Clock: h.clock, Log: testr.New(t), RequestPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	h.c = c
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.until("the controller to start", func() bool { return h.clock.HasWaiters() })
	return h
}

// publish makes version v (image tag) with rollback-after window the
// manifest; window "" opts out.
func (h *harness) publish(v, window string) *manifest.StaticPod {
	h.t.Helper()
	ann := ""
	if window != "" {
		ann = fmt.Sprintf("  annotations:\n    %s: %q\n", manifest.AnnotationRollbackAfter, window)
	}
	data := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n%sspec:\n  containers:\n  - name: web\n    image: example.com/web:%s\n", ann, v)
	sp, err := manifest.Load([]byte(data), manifest.Identity{NodeName: "n1", Source: manifest.SourceFile, Origin: "/m/web.yaml"})
	if err != nil {
		h.t.Fatal(err)
	}
	h.set.Update(manifest.SourceFile, desired.Snapshot{Pods: []*manifest.StaticPod{sp}})
	return sp
}

// run sets what the runtime runs for version sp: its container running
// (ready: its readiness probe passes) or waiting with reason.
func (h *harness) run(sp *manifest.StaticPod, ready bool, waiting string) {
	st := podstate.State{UID: sp.Pod.UID, Pod: &mruntime.Pod{UID: sp.Pod.UID, Ready: true, CreatedAt: h.clock.Now()},
		Probes: map[string]podstate.Probe{"c1": {Started: true, Ready: ready}}}
	if waiting == "" {
		st.Pod.Containers = []mruntime.Container{{ID: "c1", Name: "web", State: mruntime.ContainerRunning, StartedAt: h.clock.Now()}}
	} else {
		st.Waiting = map[string]podstate.Waiting{"web": {Reason: waiting}}
	}
	h.states.Set(key, st)
}

func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 5*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		h.t.Fatalf("timed out waiting for %s", what)
	}
}

// stays checks for a while (300 ms) that image keeps running.
func (h *harness) stays(what, image string) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 300*time.Millisecond, true,
		func(context.Context) (bool, error) {
			if got := h.running(); got != image {
				return false, fmt.Errorf("%s runs", got)
			}
			return false, nil
		})
	if !wait.Interrupted(err) {
		h.t.Fatalf("expected %s: %v (events %q)", what, err, h.events.list())
	}
}

func (h *harness) running() string {
	sp, _ := h.set.Get(key)
	return sp.Pod.Spec.Containers[0].Image
}

func (h *harness) readyRevision(sp *manifest.StaticPod) {
	h.t.Helper()
	h.run(sp, true, "")
	h.until("the revision recorded Ready", func() bool {
		r, _ := h.store.Revision(key, sp.Hash)
		return r.Ready
	})
}

func TestNotReadyWithinWindowRollsBack(t *testing.T) {
	h := start(t)
	v1 := h.publish("1", "10s")
	h.readyRevision(v1)
	before := count(t, revisions.ReasonNotReady)
	v2 := h.publish("2", "10s")
	h.run(v2, false, "")
	h.clock.Step(9 * time.Second)
	h.until("the window's timer", func() bool { return h.clock.HasWaiters() })
	if got := h.running(); got != "example.com/web:2" {
		t.Fatalf("rolled back before the window ended: %s runs", got)
	}
	h.clock.Step(2 * time.Second)
	h.until("revision 1 to run again", func() bool { return h.running() == "example.com/web:1" })
	sp, _ := h.set.Get(key)
	if sp.Pod.Annotations[revisions.AnnotationPinnedReason] != revisions.ReasonNotReady || sp.Pod.Annotations[revisions.AnnotationRevision] != "1" {
		t.Errorf("annotations of the rolled back pod: %v", sp.Pod.Annotations)
	}
	// The event is recorded after the pin that runs revision 1 again.
	h.until("a RolledBack event", func() bool { return len(h.events.list()) > 0 })
	if ev := h.events.list(); len(ev) != 1 || ev[0] != "default/web-n1 Warning RolledBack: Revision 2 was not Ready within 10s; rolled back to revision 1 until the manifest changes" {
		t.Errorf("events %q", ev)
	}
	if got := count(t, revisions.ReasonNotReady) - before; got != 1 {
		t.Errorf("rollback metric grew by %v, want 1", got)
	}
	// The pinned revision is never judged: no loop, even when it is not Ready.
	h.run(sp, false, "")
	h.clock.Step(time.Minute)
	if got := h.running(); got != "example.com/web:1" || len(h.events.list()) != 1 {
		t.Errorf("after the rollback: %s runs, events %q", got, h.events.list())
	}
	// A manifest change runs the new version.
	h.publish("3", "10s")
	if got := h.running(); got != "example.com/web:3" {
		t.Errorf("a new manifest after a rollback: %s runs", got)
	}
}

// A revision whose containers wait for the pods its mirrorlet.io/after
// names is not judged while they wait: its window counts from when they
// start, not from when the revision appeared.
func TestWindowCountsFromTheEndOfTheStartOrderWait(t *testing.T) {
	h := start(t)
	v1 := h.publish("1", "10s")
	h.readyRevision(v1)
	v2 := h.publish("2", "10s")
	h.run(v2, false, podstate.WaitingForDependencies)
	h.until("the wait seen", func() bool { return h.c.orders.waiting(key) })
	h.clock.Step(time.Minute)
	h.run(v2, false, "") // the wait ends: running, not Ready yet
	h.until("the end of the wait seen", func() bool { return !h.c.orders.waiting(key) })
	h.stays("revision 2 to run on (its wait does not count)", "example.com/web:2")
	h.clock.Step(9 * time.Second)
	h.stays("revision 2 to run on (its window from the end of the wait)", "example.com/web:2")
	h.clock.Step(2 * time.Second)
	h.until("revision 1 to run again", func() bool { return h.running() == "example.com/web:1" })
}

func TestCrashLoopRollsBackAtOnce(t *testing.T) {
	h := start(t)
	v1 := h.publish("1", "")
	h.readyRevision(v1) // a pod that opted out is still a rollback target
	v2 := h.publish("2", "2m")
	h.run(v2, false, "CrashLoopBackOff")
	h.until("revision 1 to run again", func() bool { return h.running() == "example.com/web:1" })
	if r, _ := h.store.Revision(key, v2.Hash); r.Failed == "" {
		t.Errorf("revision 2 not marked failed")
	}
}

func TestReadyRevisionSettles(t *testing.T) {
	h := start(t)
	v1 := h.publish("1", "10s")
	h.readyRevision(v1)
	v2 := h.publish("2", "10s")
	h.run(v2, true, "")
	h.clock.Step(11 * time.Second)
	h.until("revision 2 settled", func() bool {
		r, _ := h.store.Revision(key, v2.Hash)
		return r.Settled
	})
	h.run(v2, false, "CrashLoopBackOff")
	h.clock.Step(time.Minute)
	if got := h.running(); got != "example.com/web:2" || len(h.events.list()) != 0 {
		t.Errorf("a settled revision was rolled back: %s runs, events %q", got, h.events.list())
	}
}

func TestNoGoodRevisionKeepsRunning(t *testing.T) {
	h := start(t)
	v1 := h.publish("1", "10s")
	h.run(v1, false, "CrashLoopBackOff")
	h.until("a FailedRollback event", func() bool { return len(h.events.list()) == 1 })
	if got := h.running(); got != "example.com/web:1" {
		t.Errorf("%s runs", got)
	}
}

func count(t *testing.T, reason string) float64 {
	t.Helper()
	var m dto.Metric
	if err := rollbacks.WithLabelValues(key.String(), reason).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
