package staticpod

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/prober"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// running is an engine with its goroutines, on the real clock.
type running struct {
	t   *testing.T
	rt  *fake.Runtime
	set *desired.Set
	e   *Engine
}

func startEngine(t *testing.T, cfg Config) *running {
	t.Helper()
	r := &running{t: t, rt: fake.New(nil), set: desired.New(manifest.SourceFile)}
	cfg.Runtime, cfg.Desired, cfg.States, cfg.Log = r.rt, r.set, podstate.NewStore(), logr.Discard()
	if cfg.BackoffInitial == 0 {
		cfg.BackoffInitial = 300 * time.Millisecond
	}
	var err error
	if r.e, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *running) publish(pods ...*manifest.StaticPod) {
	r.set.Update(manifest.SourceFile, desired.Snapshot{Pods: pods})
}

func (r *running) load(name, image string) *manifest.StaticPod {
	r.t.Helper()
	sp, err := manifest.Load([]byte(fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers:\n  - {name: c, image: %q}\n", name, image)),
		manifest.Identity{NodeName: "n1", Source: manifest.SourceFile, Origin: "/m/" + name + ".yaml", Seen: time.Now()})
	if err != nil {
		r.t.Fatal(err)
	}
	return sp
}

func (r *running) eventually(what string, timeout time.Duration, cond func() bool) {
	r.t.Helper()
	err := wait.PollUntilContextTimeout(r.t.Context(), 10*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		r.t.Fatalf("%s: not within %s", what, timeout)
	}
}

func (r *running) runningContainer(uid types.UID, attempt uint32) bool {
	for _, p := range r.rt.Pods() {
		if c := p.Latest("c"); p.UID == uid && c != nil && c.Attempt == attempt && c.State == mruntime.ContainerRunning {
			return true
		}
	}
	return false
}

// A spec change of many pods stops them in parallel, and one pod's long
// stop never delays another pod's crash restart.
func TestWorkersDoNotWaitForEachOther(t *testing.T) {
	r := startEngine(t, Config{})
	var olds []*manifest.StaticPod
	for i := range 20 {
		olds = append(olds, r.load(fmt.Sprintf("p%d", i), "i:1"))
	}
	crash := r.load("crash", "i:1")
	r.publish(append(olds, crash)...)
	r.eventually("all pods running", 5*time.Second, func() bool {
		for _, sp := range append(olds, crash) {
			if !r.runningContainer(sp.Pod.UID, 0) {
				return false
			}
		}
		return true
	})
	r.rt.SetStopDelay(2 * time.Second)
	var news []*manifest.StaticPod
	for i := range 20 {
		news = append(news, r.load(fmt.Sprintf("p%d", i), "i:2"))
	}
	start := time.Now()
	r.publish(append(news, crash)...)
	r.eventually("20 pods stopping", time.Second, func() bool { return r.rt.Stopping() == 20 })
	if err := r.rt.Exit(crash.Pod.UID, "c", 1); err != nil {
		t.Fatal(err)
	}
	r.eventually("crashed pod restarted while 20 pods stop", time.Second, func() bool { return r.runningContainer(crash.Pod.UID, 1) })
	t.Logf("crash restart started %s after the spec change of 20 pods", time.Since(start))
	r.eventually("20 pods replaced in parallel", 6*time.Second, func() bool {
		for _, sp := range news {
			if !r.runningContainer(sp.Pod.UID, 0) {
				return false
			}
		}
		return true
	})
	t.Logf("20 pods with 2 s stops replaced in %s", time.Since(start))
}

// Manifest churn: a version written while the worker stops the previous
// one (a long grace period) is never started; the worker goes straight to
// the newest version once the stop ends (fault 4, test/e2e/faults).
func TestChurnStartsOnlyTheNewestVersion(t *testing.T) {
	r := startEngine(t, Config{})
	v1 := r.load("churn", "i:1")
	r.publish(v1)
	r.eventually("v1 running", 5*time.Second, func() bool { return r.runningContainer(v1.Pod.UID, 0) })
	r.rt.SetStopDelay(time.Second)
	v2 := r.load("churn", "i:2")
	r.publish(v2)
	r.eventually("v1 stopping", time.Second, func() bool { return r.rt.Stopping() == 1 })
	v3 := r.load("churn", "i:3")
	r.publish(v3)
	r.eventually("v3 running", 5*time.Second, func() bool { return r.runningContainer(v3.Pod.UID, 0) })
	if n := r.rt.Starts(v2.Pod.UID); n != 0 {
		t.Errorf("v2, replaced while v1 was stopping, was started %d times; want only the newest version started", n)
	}
}

// fakeProber is a Prober whose results the test sets.
type fakeProber struct {
	mu      sync.Mutex
	status  map[string]prober.Status
	updates int
	removed []types.UID
}

func (p *fakeProber) UpdatePod(*corev1.Pod, []prober.Running) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.updates++
}

func (p *fakeProber) RemovePod(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removed = append(p.removed, uid)
}

func (p *fakeProber) Status(_ types.UID, id string) prober.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.status[id]; ok {
		return st
	}
	return prober.Status{Started: true, Ready: true}
}

func (p *fakeProber) set(id string, st prober.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status[id] = st
}

type recordedEvents struct {
	mu     sync.Mutex
	events []string
}

func (r *recordedEvents) Event(pod types.NamespacedName, container, eventType, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s/%s %s %s %s", pod, container, eventType, reason, message))
}

func (r *recordedEvents) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func TestProberSeam(t *testing.T) {
	pr := &fakeProber{status: map[string]prober.Status{}}
	evs := &recordedEvents{}
	r := startEngine(t, Config{Prober: pr, Events: evs})
	sp := r.load("web", "i:1")
	r.publish(sp)
	r.eventually("running", 2*time.Second, func() bool { return r.runningContainer(sp.Pod.UID, 0) })
	id := r.rt.Pods()[0].Latest("c").ID

	// Readiness reaches the pod state; OnChange wakes the worker.
	pr.set(id, prober.Status{Started: true, Ready: false})
	r.e.OnChange(sp.Pod.UID)
	r.eventually("not ready in the pod state", 2*time.Second, func() bool {
		st, _ := r.e.cfg.States.Get(sp.Key())
		p, ok := st.Probes[id]
		return ok && p.Started && !p.Ready
	})

	// A failed liveness probe kills and restarts the container.
	pr.set(id, prober.Status{Started: true, LivenessFailed: true, Message: "HTTP probe failed with statuscode: 500"})
	r.e.OnChange(sp.Pod.UID)
	r.eventually("restarted after the liveness failure", 2*time.Second, func() bool { return r.runningContainer(sp.Pod.UID, 1) })
	want := "default/web-n1/c Normal Killing Container c failed liveness probe, will be restarted"
	if got := evs.list(); len(got) != 1 || got[0] != want {
		t.Errorf("events %q, want [%q]", got, want)
	}
	r.publish()
	r.eventually("probes removed with the pod", 2*time.Second, func() bool {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		return len(pr.removed) > 0 && pr.removed[len(pr.removed)-1] == sp.Pod.UID
	})
}
