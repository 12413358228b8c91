package staticpod

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

type fixture struct {
	t       *testing.T
	clock   *clocktesting.FakeClock
	rt      *fake.Runtime
	set     *desired.Set
	e       *Engine
	sp      *manifest.StaticPod
	workers map[types.NamespacedName]*worker
}

func newFixture(t *testing.T, manifestYAML string) *fixture {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f := &fixture{t: t, clock: clk, rt: fake.New(clk), set: desired.New(manifest.SourceFile),
		workers: map[types.NamespacedName]*worker{}}
	if manifestYAML != "" {
		f.sp = f.load(manifestYAML)
	}
	var err error
	f.e, err = New(Config{Runtime: f.rt, Desired: f.set, States: podstate.NewStore(), Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) load(manifestYAML string) *manifest.StaticPod {
	f.t.Helper()
	sp, err := manifest.Load([]byte(manifestYAML), manifest.Identity{NodeName: "n1", Source: manifest.SourceFile,
		Origin: "/m/p.yaml", Seen: f.clock.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	return sp
}

func (f *fixture) want(present bool) {
	snap := desired.Snapshot{}
	if present {
		snap.Pods = []*manifest.StaticPod{f.sp}
	}
	f.set.Update(manifest.SourceFile, snap)
}

// syncKey refreshes the cache and runs one sync of key's worker, as the
// worker's goroutine would, but synchronously.
func (f *fixture) syncKey(key types.NamespacedName) result {
	f.t.Helper()
	f.e.cfg.Cache.Relist(context.Background())
	w, ok := f.workers[key]
	if !ok {
		w = newWorker(f.e, key)
		f.workers[key] = w
	}
	res, err := w.sync(context.Background())
	if err != nil {
		f.t.Fatalf("sync %s: %v", key, err)
	}
	return res
}

func (f *fixture) sync() result {
	f.t.Helper()
	return f.syncKey(f.sp.Key())
}

func (f *fixture) latest(name string) *mruntime.Container {
	pods := f.rt.Pods()
	if len(pods) != 1 {
		f.t.Fatalf("runtime runs %d pods, want 1", len(pods))
	}
	return pods[0].Latest(name)
}

const onePod = `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  restartPolicy: %s
  containers:
  - {name: c, image: "i:1"}
`

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func manifestWithPolicy(policy string) string {
	return fmt.Sprintf(onePod, policy)
}

func TestCrashLoopBackOff(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.want(true)
	f.sync()
	uid := f.sp.Pod.UID
	if f.rt.Starts(uid) != 1 {
		t.Fatalf("starts %d after first sync", f.rt.Starts(uid))
	}
	// The first crash restarts at once, like the kubelet.
	if err := f.rt.Exit(uid, "c", 1); err != nil {
		t.Fatal(err)
	}
	f.sync()
	if got := f.latest("c"); f.rt.Starts(uid) != 2 || got.Attempt != 1 {
		t.Fatalf("after first crash: starts %d attempt %d", f.rt.Starts(uid), got.Attempt)
	}
	// Then 10s, 20s, 40s ...
	for i, wantDelay := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		if err := f.rt.Exit(uid, "c", 1); err != nil {
			t.Fatal(err)
		}
		res := f.sync()
		if res.requeue != wantDelay {
			t.Errorf("crash %d: requeue after %s, want %s", i+2, res.requeue, wantDelay)
		}
		st, _ := f.e.cfg.States.Get(f.sp.Key())
		if st.Waiting["c"].Reason != "CrashLoopBackOff" {
			t.Errorf("crash %d: waiting %+v, want CrashLoopBackOff", i+2, st.Waiting)
		}
		before := f.rt.Starts(uid)
		f.clock.Step(wantDelay - time.Second)
		f.sync()
		if f.rt.Starts(uid) != before {
			t.Fatalf("crash %d: restarted before the back-off ended", i+2)
		}
		f.clock.Step(time.Second)
		f.sync()
		if f.rt.Starts(uid) != before+1 {
			t.Fatalf("crash %d: not restarted when the back-off ended", i+2)
		}
	}
	// After 10 minutes of running the back-off starts over.
	f.clock.Step(11 * time.Minute)
	if err := f.rt.Exit(uid, "c", 1); err != nil {
		t.Fatal(err)
	}
	before := f.rt.Starts(uid)
	f.sync()
	if f.rt.Starts(uid) != before+1 {
		t.Errorf("a crash after 11 minutes of running was not restarted at once")
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy      string
		exitCode    int32
		wantRestart bool
	}{
		{"Always", 0, true},
		{"Always", 1, true},
		{"OnFailure", 0, false},
		{"OnFailure", 2, true},
		{"Never", 0, false},
		{"Never", 1, false},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			f := newFixture(t, manifestWithPolicy(tc.policy))
			f.want(true)
			f.sync()
			if err := f.rt.Exit(f.sp.Pod.UID, "c", tc.exitCode); err != nil {
				t.Fatal(err)
			}
			f.sync()
			if restarted := f.rt.Starts(f.sp.Pod.UID) == 2; restarted != tc.wantRestart {
				t.Errorf("exit %d under %s: restarted=%v, want %v", tc.exitCode, tc.policy, restarted, tc.wantRestart)
			}
		})
	}
}

func TestInitContainersRunFirstInOrder(t *testing.T) {
	f := newFixture(t, `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - {name: init1, image: "i:1"}
  - {name: init2, image: "i:1"}
  containers:
  - {name: app, image: "i:1"}
`)
	f.want(true)
	uid := f.sp.Pod.UID
	f.sync()
	if f.latest("init1") == nil || f.latest("init2") != nil || f.latest("app") != nil {
		t.Fatalf("first sync must start only init1")
	}
	if err := f.rt.Exit(uid, "init1", 0); err != nil {
		t.Fatal(err)
	}
	f.sync()
	if f.latest("init2") == nil || f.latest("app") != nil {
		t.Fatalf("init2 must start after init1 succeeded, app not yet")
	}
	if err := f.rt.Exit(uid, "init2", 0); err != nil {
		t.Fatal(err)
	}
	f.sync()
	if c := f.latest("app"); c == nil || c.State != mruntime.ContainerRunning {
		t.Fatalf("app must run after the init containers")
	}
}

func TestRuntimePodWithoutManifestStoppedOnlyOnceSynced(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.want(true)
	f.sync()
	// A fresh desired set (as after a restart) that no source fed yet.
	f.set = desired.New(manifest.SourceFile)
	f.e.cfg.Desired = f.set
	res := f.sync()
	if len(f.rt.Pods()) != 1 || res.requeue == 0 {
		t.Fatalf("a pod was stopped before the sources were read")
	}
	f.want(false)
	f.sync()
	if len(f.rt.Pods()) != 0 {
		t.Fatalf("pod without manifest still runs after the sources were read")
	}
}

// TestSandboxNotRemovedDoesNotBlockNewVersion: the old version's sandbox is
// stopped but the runtime refuses to remove it (containerd holding the task
// of a container whose start a kill cut off); the new version starts all
// the same, as the kubelet's does, and the old sandbox is removed once the
// runtime lets it.
func TestSandboxNotRemovedDoesNotBlockNewVersion(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.want(true)
	f.sync()
	old := f.sp.Pod.UID
	f.rt.SetRemoveFails(true)
	f.sp = f.load(strings.Replace(manifestWithPolicy("Always"), `"i:1"`, `"i:2"`, 1))
	f.want(true)
	f.sync()
	var oldReady, newRuns bool
	for _, p := range f.rt.Pods() {
		switch p.UID {
		case old:
			oldReady = p.Ready
		case f.sp.Pod.UID:
			newRuns = p.Ready && p.Latest("c") != nil && p.Latest("c").State == mruntime.ContainerRunning
		}
	}
	if oldReady || !newRuns {
		t.Fatalf("old sandbox ready %v, new version running %v; want false, true", oldReady, newRuns)
	}
	f.rt.SetRemoveFails(false)
	f.sync()
	for _, p := range f.rt.Pods() {
		if p.UID == old {
			t.Fatalf("old sandbox %s still there after the runtime let it go", p.SandboxID)
		}
	}
}
