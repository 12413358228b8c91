package staticpod

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// loadAnnotated is load with annotations (a YAML flow map), the container
// mounting hostPath /etc/pki.
func (r *running) loadAnnotated(name, image, annotations string) *manifest.StaticPod {
	r.t.Helper()
	data := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, annotations: {%s}}\nspec:\n"+
		"  containers:\n  - {name: c, image: %q, volumeMounts: [{name: pki, mountPath: /pki}]}\n"+
		"  volumes: [{name: pki, hostPath: {path: /etc/pki}}]\n", name, annotations, image)
	sp, err := manifest.Load([]byte(data), manifest.Identity{NodeName: "n1", Source: manifest.SourceFile,
		Origin: "/m/" + name + ".yaml", Seen: time.Now()})
	if err != nil {
		r.t.Fatal(err)
	}
	return sp
}

func (r *running) waitingReason(sp *manifest.StaticPod) string {
	st, _ := r.e.cfg.States.Get(sp.Key())
	return st.Waiting["c"].Reason
}

// A pod waits for the pods it names to be Ready before it starts in a new
// sandbox only: a crash restarts it at once even while they are down; a
// new sandbox (the old one died) waits again.
func TestStartOrderHoldsNewSandboxesOnly(t *testing.T) {
	evs := &recordedEvents{}
	r := startEngine(t, Config{Events: evs})
	r.rt.SetCreateFails("etcd:1", true)
	etcd := r.load("etcd", "etcd:1")
	api := r.loadAnnotated("apiserver", "api:1", "mirrorlet.io/after: etcd")
	r.publish(etcd, api)

	r.eventually("apiserver waiting for etcd", 5*time.Second, func() bool {
		return r.waitingReason(api) == ReasonWaitingForDependencies
	})
	if r.runningContainer(api.Pod.UID, 0) {
		t.Fatal("apiserver started before etcd ran")
	}
	r.rt.SetCreateFails("etcd:1", false)
	r.eventually("etcd, then apiserver running", 10*time.Second, func() bool {
		return r.runningContainer(etcd.Pod.UID, 0) && r.runningContainer(api.Pod.UID, 0)
	})

	r.rt.SetCreateFails("etcd:1", true)
	if err := r.rt.Exit(etcd.Pod.UID, "c", 1); err != nil {
		t.Fatal(err)
	}
	r.eventually("etcd down", 5*time.Second, func() bool { return r.waitingReason(etcd) == "CreateContainerError" })
	if err := r.rt.Exit(api.Pod.UID, "c", 1); err != nil {
		t.Fatal(err)
	}
	r.eventually("apiserver restarted while etcd is down", 10*time.Second, func() bool {
		return r.runningContainer(api.Pod.UID, 1)
	})

	// Its sandbox dies (as on a reboot): the new sandbox waits again.
	if err := r.rt.KillSandbox(api.Pod.UID); err != nil {
		t.Fatal(err)
	}
	r.eventually("apiserver waiting for etcd in its new sandbox", 10*time.Second, func() bool {
		return r.waitingReason(api) == ReasonWaitingForDependencies
	})
	r.rt.SetCreateFails("etcd:1", false)
	r.eventually("apiserver running in its new sandbox", 10*time.Second, func() bool {
		return r.runningContainer(api.Pod.UID, 2)
	})
	if len(evs.list()) != 0 {
		t.Errorf("unexpected events %v", evs.list())
	}
}

// A pod whose dependency never runs starts after its timeout, with a
// Warning Event.
func TestStartOrderTimeoutStartsAnyway(t *testing.T) {
	evs := &recordedEvents{}
	r := startEngine(t, Config{Events: evs})
	r.rt.SetCreateFails("never:1", true)
	api := r.loadAnnotated("apiserver", "api:1", "mirrorlet.io/after: never, mirrorlet.io/after-timeout: 300ms")
	r.publish(r.load("never", "never:1"), api)
	r.eventually("apiserver running after the timeout", 10*time.Second, func() bool {
		return r.runningContainer(api.Pod.UID, 0)
	})
	want := "default/apiserver-n1/ Warning DependenciesNotReady Static pods never not Ready after 300ms"
	if got := evs.list(); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("events %q, want one starting %q", got, want)
	}
}

// fakeFiles is a FileWatcher whose changes the test makes.
type fakeFiles struct {
	mu      sync.Mutex
	watched map[types.UID][]string
	seq     map[types.UID]uint64
}

func (f *fakeFiles) Watch(uid types.UID, paths []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(paths) > 0 {
		f.watched[uid] = slices.Clone(paths)
	}
}

func (f *fakeFiles) Forget(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watched, uid)
}

func (f *fakeFiles) Changed(uid types.UID) (uint64, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seq[uid], f.watched[uid]
}

func (f *fakeFiles) change(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq[uid]++
}

// Each change of a watched file restarts the pod's running container once,
// without back-off, with an Event naming the file.
func TestRestartOnChangeRestartsOncePerChange(t *testing.T) {
	files := &fakeFiles{watched: map[types.UID][]string{}, seq: map[types.UID]uint64{}}
	evs := &recordedEvents{}
	r := startEngine(t, Config{Events: evs, Files: files, BackoffInitial: time.Hour})
	sp := r.loadAnnotated("web", "i:1", "mirrorlet.io/restart-on-change: /etc/pki/tls.crt")
	other := r.load("other", "i:1")
	r.publish(sp, other)
	r.eventually("both running", 5*time.Second, func() bool {
		return r.runningContainer(sp.Pod.UID, 0) && r.runningContainer(other.Pod.UID, 0)
	})
	for attempt := uint32(1); attempt <= 2; attempt++ {
		files.change(sp.Pod.UID)
		r.e.OnChange(sp.Pod.UID)
		r.eventually(fmt.Sprintf("attempt %d running", attempt), 5*time.Second, func() bool {
			return r.runningContainer(sp.Pod.UID, attempt)
		})
	}
	r.e.OnChange(sp.Pod.UID) // no new change: nothing happens
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 500*time.Millisecond, true,
		func(context.Context) (bool, error) {
			return len(evs.list()) > 2 || !r.runningContainer(sp.Pod.UID, 2) || !r.runningContainer(other.Pod.UID, 0), nil
		})
	if err == nil {
		t.Fatalf("restarted more than once per change, or a pod without the annotation; events %q", evs.list())
	}
	want := "default/web-n1/ Normal HostFileChanged Host file /etc/pki/tls.crt changed (mirrorlet.io/restart-on-change); restarting containers c"
	if got := evs.list(); got[0] != want || got[1] != want {
		t.Errorf("events %q, want twice %q", got, want)
	}
	if _, paths := files.Changed(other.Pod.UID); paths != nil {
		t.Errorf("a pod without the annotation is watched")
	}
}
