package staticpod

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// settle syncs key until a sync changes nothing, as the worker does after
// each action.
func (f *fixture) settle(key types.NamespacedName) result {
	f.t.Helper()
	var res result
	for range 20 {
		res = f.syncKey(key)
		if !res.acted {
			return res
		}
	}
	f.t.Fatalf("sync of %s never settled", key)
	return res
}

func (f *fixture) pod() mruntime.Pod {
	f.t.Helper()
	pods := f.rt.Pods()
	if len(pods) != 1 {
		f.t.Fatalf("runtime runs %d sandboxes, want 1", len(pods))
	}
	return pods[0]
}

// newest returns the runtime's newest sandbox.
func (f *fixture) newest() mruntime.Pod {
	f.t.Helper()
	p := newestSandbox(f.rt.Pods(), false)
	if p == nil {
		f.t.Fatal("the runtime runs no sandbox")
	}
	return *p
}

// wantLastState checks that the published state of the pod shows container
// c running with the exited attempt prev before it (the mirror's lastState).
func (f *fixture) wantLastState(prev uint32) {
	f.t.Helper()
	st, _ := f.e.cfg.States.Get(f.sp.Key())
	if st.Pod == nil {
		f.t.Fatal("no runtime pod published")
	}
	var exited []uint32
	for _, c := range st.Pod.Containers {
		if c.Name == "c" && c.State == mruntime.ContainerExited {
			exited = append(exited, c.Attempt)
		}
	}
	if l := st.Pod.Latest("c"); l == nil || l.State != mruntime.ContainerRunning || !slices.Contains(exited, prev) {
		f.t.Errorf("published attempts: latest %+v, exited %v; want running with exited attempt %d (lastState)", l, exited, prev)
	}
}

func TestContainerLeftCreatedIsReplaced(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.rt.LeaveCreatedOnce("i:1")
	f.want(true)
	f.settle(f.sp.Key())
	p := f.pod()
	c := p.Latest("c")
	if c.State != mruntime.ContainerRunning || c.Attempt != 1 {
		t.Fatalf("latest attempt %d in state %s, want attempt 1 running", c.Attempt, c.State)
	}
	for _, o := range p.Containers {
		if o.State == mruntime.ContainerCreated {
			t.Errorf("container %s left in Created", o.ID)
		}
	}
}

func TestFailedStartUnderNeverEndsThePod(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Never"))
	f.rt.SetStartFails("i:1", true)
	f.want(true)
	f.settle(f.sp.Key())
	p := f.pod()
	if p.Ready {
		t.Errorf("the sandbox of a failed pod still runs")
	}
	c := p.Latest("c")
	if c == nil || c.Reason != "StartError" || c.Attempt != 0 || len(p.Containers) != 1 {
		t.Fatalf("containers %+v, want one StartError attempt", p.Containers)
	}
	st, _ := f.e.cfg.States.Get(f.sp.Key())
	if st.Pod == nil || st.Pod.Latest("c").Reason != "StartError" {
		t.Errorf("state does not keep the final container status: %+v", st.Pod)
	}
	f.clock.Step(time.Hour)
	f.settle(f.sp.Key())
	if n := len(f.pod().Containers); n != 1 || f.pod().Ready {
		t.Errorf("a Never pod that failed was started again (%d attempts)", n)
	}
}

func TestFailedStartUnderAlwaysBacksOff(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.rt.SetStartFails("i:1", true)
	f.want(true)
	f.settle(f.sp.Key()) // attempt 0 fails, attempt 1 at once (first restart)
	res := f.settle(f.sp.Key())
	if p := f.pod(); p.Latest("c").Attempt != 1 || p.Latest("c").Reason != "StartError" {
		c := p.Latest("c")
		t.Fatalf("latest attempt %d reason %q, want 1 StartError", c.Attempt, c.Reason)
	}
	if res.requeue != 10*time.Second {
		t.Errorf("requeue %s, want the 10s back-off", res.requeue)
	}
	f.rt.SetStartFails("i:1", false)
	f.clock.Step(10 * time.Second)
	f.settle(f.sp.Key())
	if p := f.pod(); p.Latest("c").Attempt != 2 || p.Latest("c").State != mruntime.ContainerRunning {
		c := p.Latest("c")
		t.Fatalf("latest attempt %d %s, want 2 running", c.Attempt, c.State)
	}
}

const initPod = `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  restartPolicy: %s
  initContainers:
  - {name: init, image: "i:1"}
  containers:
  - {name: app, image: "i:1"}
`

func TestInitContainerFailurePerRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy   string
		finished bool
	}{{"Never", true}, {"OnFailure", false}, {"Always", false}} {
		t.Run(tc.policy, func(t *testing.T) {
			f := newFixture(t, sprintf(initPod, tc.policy))
			f.want(true)
			f.settle(f.sp.Key())
			if err := f.rt.Exit(f.sp.Pod.UID, "init", 3); err != nil {
				t.Fatal(err)
			}
			f.settle(f.sp.Key())
			p := f.pod()
			if p.Ready == tc.finished {
				t.Errorf("sandbox ready=%v, want %v", p.Ready, !tc.finished)
			}
			if l := p.Latest("init"); tc.finished != (l.Attempt == 0) {
				t.Errorf("init attempt %d after a failure under %s", l.Attempt, tc.policy)
			}
			if p.Latest("app") != nil {
				t.Errorf("app container started although init failed")
			}
		})
	}
}

func TestSucceededPodUnderOnFailureStopsItsSandbox(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("OnFailure"))
	f.want(true)
	f.settle(f.sp.Key())
	if err := f.rt.Exit(f.sp.Pod.UID, "c", 0); err != nil {
		t.Fatal(err)
	}
	f.settle(f.sp.Key())
	if f.pod().Ready {
		t.Errorf("sandbox of a Succeeded pod still ready")
	}
	st, _ := f.e.cfg.States.Get(f.sp.Key())
	if st.Pod == nil || st.Pod.Latest("c") == nil || st.Pod.Latest("c").State != mruntime.ContainerExited {
		t.Errorf("state lost the final container status")
	}
}

func TestLostSandboxKeepsDataAndRestartCount(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.want(true)
	uid := f.sp.Pod.UID
	f.settle(f.sp.Key())
	for range 2 {
		if err := f.rt.Exit(uid, "c", 1); err != nil {
			t.Fatal(err)
		}
		f.clock.Step(time.Minute)
		f.settle(f.sp.Key())
	}
	before := f.pod()
	if err := f.rt.KillSandbox(uid); err != nil {
		t.Fatal(err)
	}
	// The state published right after the new sandbox is made keeps the
	// last attempt: the mirror's restartCount never drops to 0.
	f.rt.SetImageMissing("i:1", true)
	f.settle(f.sp.Key())
	st, _ := f.e.cfg.States.Get(f.sp.Key())
	if c := st.Pod.Latest("c"); st.Pod.SandboxID == before.SandboxID || c == nil || c.Attempt != 2 {
		t.Fatalf("state of the new sandbox before its container starts: %+v", st.Pod)
	}
	f.rt.SetImageMissing("i:1", false)
	f.clock.Step(time.Minute)
	f.settle(f.sp.Key())
	after := f.newest()
	if after.SandboxID == before.SandboxID || !after.Ready {
		t.Fatalf("no new sandbox after the old one died")
	}
	if c := after.Latest("c"); c.Attempt != 3 {
		t.Errorf("attempt %d in the new sandbox, want 3 (restart count continues)", c.Attempt)
	}
	f.wantLastState(2)
	if f.rt.RemovedData(uid) != 0 {
		t.Errorf("pod data removed with a lost sandbox")
	}
	// A restarted mirrorlet (new engine, empty memory) keeps counting.
	if err := f.rt.KillSandbox(uid); err != nil {
		t.Fatal(err)
	}
	f.workers = map[types.NamespacedName]*worker{}
	f.settle(f.sp.Key())
	f.wantLastState(3)
	if p := f.newest(); p.Latest("c").Attempt != 4 {
		c := p.Latest("c")
		t.Errorf("attempt %d after a restart of mirrorlet and a lost sandbox, want 4", c.Attempt)
	}
	f.want(false)
	f.settle(f.sp.Key())
	if len(f.rt.Pods()) != 0 || f.rt.RemovedData(uid) != 1 {
		t.Errorf("pod gone: %d sandboxes left, data removed %d times, want 0 and 1", len(f.rt.Pods()), f.rt.RemovedData(uid))
	}
}

func TestSpecChangeStopsOldVersionAndRemovesItsData(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.want(true)
	f.settle(f.sp.Key())
	old := f.sp.Pod.UID
	f.sp = f.load(manifestWithPolicy("OnFailure"))
	f.want(true)
	f.settle(f.sp.Key())
	p := f.pod()
	if p.UID != f.sp.Pod.UID || p.Latest("c") == nil {
		t.Fatalf("new version not running")
	}
	if f.rt.RemovedData(old) != 1 || f.rt.RemovedData(p.UID) != 0 {
		t.Errorf("data removed: old %d new %d, want 1 and 0", f.rt.RemovedData(old), f.rt.RemovedData(p.UID))
	}
}

func TestCreateErrorBacksOff(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.rt.SetCreateFails("i:1", true)
	f.want(true)
	res := f.settle(f.sp.Key())
	st, _ := f.e.cfg.States.Get(f.sp.Key())
	if st.Waiting["c"].Reason != "CreateContainerError" || res.requeue != 10*time.Second {
		t.Fatalf("waiting %+v, requeue %s; want CreateContainerError and a 10s back-off", st.Waiting, res.requeue)
	}
	f.rt.SetCreateFails("i:1", false)
	f.clock.Step(10 * time.Second)
	f.settle(f.sp.Key())
	if p := f.pod(); p.Latest("c") == nil || p.Latest("c").State != mruntime.ContainerRunning {
		t.Fatalf("container not running after the back-off")
	}
}

// TestBackOffWaitsOnlyForWhatIsLeft: a sync made while a create back-off
// runs (a probe result, another container's event, the resync) requeues
// for the time left of the back-off, not for a whole back-off from now:
// each such wake used to push the retry out again, up to the next resync.
func TestBackOffWaitsOnlyForWhatIsLeft(t *testing.T) {
	f := newFixture(t, manifestWithPolicy("Always"))
	f.rt.SetCreateFails("i:1", true)
	f.want(true)
	if res := f.settle(f.sp.Key()); res.requeue != 10*time.Second {
		t.Fatalf("requeue %s after the first failure, want the 10s back-off", res.requeue)
	}
	f.clock.Step(4 * time.Second)
	if res := f.settle(f.sp.Key()); res.requeue != 6*time.Second {
		t.Fatalf("requeue %s 4s into a 10s back-off, want the 6s left", res.requeue)
	}
	f.rt.SetCreateFails("i:1", false)
	f.clock.Step(6 * time.Second)
	f.settle(f.sp.Key())
	if c := f.latest("c"); c == nil || c.State != mruntime.ContainerRunning {
		t.Fatalf("container %+v when the back-off ends, want running", c)
	}
}

// A missing image under imagePullPolicy Never is ErrImageNeverPull at
// every sync, as in the kubelet: no pull was made, so there is no pull
// back-off (never ImagePullBackOff), the sync is tried again every 10 s
// (not at the 1 min resync); once the image is there, it starts.
func TestImageNeverPulledIsNotBackedOff(t *testing.T) {
	f := newFixture(t, strings.Replace(manifestWithPolicy("Always"), `image: "i:1"`, `image: "i:1", imagePullPolicy: Never`, 1))
	f.rt.SetImageMissing("i:1", true)
	f.want(true)
	for range 3 {
		res := f.settle(f.sp.Key())
		st, _ := f.e.cfg.States.Get(f.sp.Key())
		if w := st.Waiting["c"]; w.Reason != "ErrImageNeverPull" || w.Message != `Container image "i:1" is not present with pull policy of Never` {
			t.Fatalf("waiting %+v, want ErrImageNeverPull in the kubelet's words", w)
		}
		if res.requeue != 10*time.Second {
			t.Errorf("requeued after %s: a Never image is tried again after 10s (the kubelet's retry of a failed sync), not on a back-off", res.requeue)
		}
		f.clock.Step(11 * time.Second)
	}
	f.rt.SetImageMissing("i:1", false)
	f.settle(f.sp.Key())
	if c := f.latest("c"); c == nil || c.State != mruntime.ContainerRunning {
		t.Fatalf("container %+v once the image is there, want running", c)
	}
}
