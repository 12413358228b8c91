package staticpod

import (
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// ReasonWaitingForDependencies is the waiting reason of the containers of
// a static pod that waits for others to be Ready (manifest.AnnotationAfter).
const ReasonWaitingForDependencies = podstate.WaitingForDependencies

// gateState is what a worker knows of its pod's start order, per pod
// version: which sandbox waits since when, and which sandbox may start its
// containers (it waited enough, or needed not).
type gateState struct {
	since    map[types.UID]sandboxTime
	released map[types.UID]string
}

type sandboxTime struct {
	sandbox string
	at      time.Time
}

// gatedKeys are the static pods waiting for others: a change of any pod's
// state wakes them.
type gatedKeys struct {
	mu   sync.Mutex
	keys map[types.NamespacedName]bool
}

func (g *gatedKeys) set(key types.NamespacedName, gated bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.keys == nil {
		g.keys = map[types.NamespacedName]bool{}
	}
	if gated {
		g.keys[key] = true
	} else {
		delete(g.keys, key)
	}
}

func (g *gatedKeys) list() []types.NamespacedName {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]types.NamespacedName, 0, len(g.keys))
	for k := range g.keys {
		out = append(out, k)
	}
	return out
}

// wakeGated wakes the workers of the pods that wait for others, when the
// state of a static pod changes (key may be one they wait for).
func (e *Engine) wakeGated(changed types.NamespacedName) {
	for _, key := range e.gated.list() {
		if key == changed {
			continue
		}
		if _, ok := e.cfg.Desired.Get(key); !ok {
			e.gated.set(key, false)
			continue
		}
		e.wake(key)
	}
}

// waitForStartOrder reports whether the pod's containers must wait for
// the static pods its manifest names (manifest.AnnotationAfter) to be
// Ready, recording why on each container. Only a new sandbox waits (the
// pod's first start, or after its sandbox died, as on a reboot of the
// node), and only until it has started a container or waited its
// timeout: a crash, a restart of a dependency or of mirrorlet never holds
// back a pod whose sandbox runs.
func (s *podSync) waitForStartOrder() bool {
	uid, g := s.sp.Pod.UID, &s.w.gate
	if len(s.cur.Containers) > 0 || g.released[uid] == s.cur.SandboxID {
		return false
	}
	names, timeout := manifest.StartAfter(s.sp.Pod)
	if len(names) == 0 {
		return false
	}
	// Until every source published, a dependency may be still unknown.
	deps, synced := s.w.e.cfg.Desired.After(s.sp.Key()), s.w.e.cfg.Desired.Synced()
	if synced && len(deps) == 0 {
		return false
	}
	waited := s.w.waitedFor(uid, s.cur.SandboxID)
	notReady := names
	if synced {
		notReady = s.w.e.notReady(deps)
	}
	left := timeout - waited
	if len(notReady) == 0 || left <= 0 {
		s.release(notReady, waited, timeout)
		return false
	}
	s.setWaiting(notReady, timeout)
	s.w.e.gated.set(s.w.key, true)
	if !synced {
		left = min(left, time.Second)
	}
	s.requeueIn(left)
	return true
}

// waitedFor returns how long the sandbox of pod version uid has waited
// for others.
func (w *worker) waitedFor(uid types.UID, sandbox string) time.Duration {
	g := &w.gate
	if g.since == nil {
		g.since, g.released = map[types.UID]sandboxTime{}, map[types.UID]string{}
	}
	now := w.e.cfg.Clock.Now()
	since, ok := g.since[uid]
	if !ok || since.sandbox != sandbox {
		since = sandboxTime{sandbox: sandbox, at: now}
		g.since[uid] = since
	}
	return now.Sub(since.at)
}

// setWaiting shows on every container that it waits for the static pods
// named.
func (s *podSync) setWaiting(names []string, timeout time.Duration) {
	msg := fmt.Sprintf("waiting for static pods %s to be Ready (%s), at most %s", strings.Join(names, ", "),
		manifest.AnnotationAfter, timeout)
	for _, c := range append(append([]corev1.Container{}, s.sp.Pod.Spec.InitContainers...), s.sp.Pod.Spec.Containers...) {
		s.waiting[c.Name] = podstate.Waiting{Reason: ReasonWaitingForDependencies, Message: msg}
	}
}

// release lets the pod start: its dependencies are Ready, or the wait
// timed out (with a Warning Event).
func (s *podSync) release(notReady []string, waited, timeout time.Duration) {
	uid := s.sp.Pod.UID
	s.w.gate.released[uid] = s.cur.SandboxID
	delete(s.w.gate.since, uid)
	s.w.e.gated.set(s.w.key, false)
	if len(notReady) == 0 {
		s.w.logger().Info("Dependencies Ready; starting containers", "waited", waited.Round(time.Millisecond))
		return
	}
	s.w.logger().Info("Dependencies not Ready in time; starting containers anyway", "notReady", notReady, "timeout", timeout)
	s.w.e.cfg.Events.Event(s.sp.Key(), "", corev1.EventTypeWarning, "DependenciesNotReady",
		fmt.Sprintf("Static pods %s not Ready after %s (%s); starting anyway", strings.Join(notReady, ", "), timeout,
			manifest.AnnotationAfterTimeout))
}

// notReady returns the manifest names of the static pods keys that are
// not Ready: every app container of their desired version running, and
// ready by its readiness probe if it has one.
func (e *Engine) notReady(keys []types.NamespacedName) []string {
	var out []string
	for _, key := range keys {
		sp, ok := e.cfg.Desired.Get(key)
		if !ok {
			continue
		}
		st, ok := e.cfg.States.Get(key)
		if !ok || st.UID != sp.Pod.UID || st.Pod == nil || !podReady(&sp.Pod.Spec, st) {
			out = append(out, manifest.OwnName(sp.Pod))
		}
	}
	return out
}

func podReady(spec *corev1.PodSpec, st podstate.State) bool {
	for _, c := range spec.Containers {
		l := st.Pod.Latest(c.Name)
		if l == nil || l.State != mruntime.ContainerRunning {
			return false
		}
		if st.Probes == nil {
			continue
		}
		if p, ok := st.Probes[l.ID]; !ok || !p.Ready {
			return false
		}
	}
	return true
}

// forgetGate forgets the start order of a pod version no longer desired.
func (w *worker) forgetGate(uid types.UID) {
	delete(w.gate.since, uid)
	delete(w.gate.released, uid)
}
