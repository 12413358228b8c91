package podstatus

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func container(name string, attempt uint32, state mruntime.ContainerState, exit int32) mruntime.Container {
	c := mruntime.Container{ID: name + "-" + string(rune('0'+attempt)), Name: name, Attempt: attempt, State: state,
		StartedAt: t0, ImageRef: "sha256:x"}
	if state == mruntime.ContainerExited {
		c.ExitCode, c.FinishedAt = exit, t0.Add(time.Second)
	}
	return c
}

func TestComputeStatus(t *testing.T) {
	always := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "c", Image: "i"}}}
	never := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "i"}}}
	pod := func(cs ...mruntime.Container) *mruntime.Pod {
		return &mruntime.Pod{SandboxID: "s", Ready: true, CreatedAt: t0, IP: "10.0.0.9", Containers: cs}
	}
	for _, tc := range []struct {
		name      string
		spec      *corev1.PodSpec
		state     *podstate.State
		problems  []desired.Problem
		phase     corev1.PodPhase
		ready     bool
		restarts  int32
		waiting   string
		lastExit  *int32
		validCond corev1.ConditionStatus
	}{
		{name: "nothing yet", spec: always, phase: corev1.PodPending, waiting: "ContainerCreating", validCond: corev1.ConditionTrue},
		{name: "running", spec: always, state: &podstate.State{Pod: pod(container("c", 0, mruntime.ContainerRunning, 0))},
			phase: corev1.PodRunning, ready: true, validCond: corev1.ConditionTrue},
		{name: "restarted", spec: always, state: &podstate.State{Pod: pod(
			container("c", 0, mruntime.ContainerExited, 2), container("c", 1, mruntime.ContainerRunning, 0))},
			phase: corev1.PodRunning, ready: true, restarts: 1, lastExit: ptrTo[int32](2), validCond: corev1.ConditionTrue},
		{name: "crash loop", spec: always, state: &podstate.State{
			Pod:     pod(container("c", 3, mruntime.ContainerExited, 1)),
			Waiting: map[string]podstate.Waiting{"c": {Reason: "CrashLoopBackOff"}}},
			phase: corev1.PodRunning, restarts: 3, waiting: "CrashLoopBackOff", lastExit: ptrTo[int32](1), validCond: corev1.ConditionTrue},
		{name: "never, failed", spec: never, state: &podstate.State{Pod: pod(container("c", 0, mruntime.ContainerExited, 1))},
			phase: corev1.PodFailed, validCond: corev1.ConditionTrue},
		{name: "never, succeeded", spec: never, state: &podstate.State{Pod: pod(container("c", 0, mruntime.ContainerExited, 0))},
			phase: corev1.PodSucceeded, validCond: corev1.ConditionTrue},
		{name: "image pull", spec: always, state: &podstate.State{Pod: pod(),
			Waiting: map[string]podstate.Waiting{"c": {Reason: "ErrImagePull", Message: "nope"}}},
			phase: corev1.PodPending, waiting: "ErrImagePull", validCond: corev1.ConditionTrue},
		{name: "bad manifest", spec: always, state: &podstate.State{Pod: pod(container("c", 0, mruntime.ContainerRunning, 0))},
			problems: []desired.Problem{{Origin: "/m/p.yaml", Err: errors.New("/m/p.yaml: bad")}},
			phase:    corev1.PodRunning, ready: true, validCond: corev1.ConditionFalse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Spec: tc.spec, Problems: tc.problems, HostIP: "192.0.2.1", RuntimeName: "fake", Now: t0}
			if tc.state != nil {
				in.State, in.HasState = *tc.state, true
			}
			st := Compute(in)
			cs := st.ContainerStatuses[0]
			if st.Phase != tc.phase || cs.Ready != tc.ready || cs.RestartCount != tc.restarts {
				t.Errorf("phase %s ready %v restarts %d, want %s %v %d", st.Phase, cs.Ready, cs.RestartCount, tc.phase, tc.ready, tc.restarts)
			}
			if got := waitingReason(cs); got != tc.waiting {
				t.Errorf("waiting %q, want %q", got, tc.waiting)
			}
			if last := cs.LastTerminationState.Terminated; (last == nil) != (tc.lastExit == nil) || last != nil && last.ExitCode != *tc.lastExit {
				t.Errorf("lastState %+v, want exit %v", last, tc.lastExit)
			}
			if c := findCondition(st, ConditionManifestValid); c == nil || c.Status != tc.validCond {
				t.Errorf("ManifestValid %+v, want %s", c, tc.validCond)
			}
			// Computing again from the result changes nothing (no churn).
			in.Have, in.Now = st, t0.Add(time.Hour)
			if again := Compute(in); !equalStatus(again, st) {
				t.Errorf("status not stable:\n%+v\n%+v", again, st)
			}
		})
	}
}

func waitingReason(cs corev1.ContainerStatus) string {
	if cs.State.Waiting == nil {
		return ""
	}
	return cs.State.Waiting.Reason
}

func findCondition(st corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

func ptrTo[T any](v T) *T { return &v }

func equalStatus(a, b corev1.PodStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// Probe results reach container ready/started and the ContainersReady and
// Ready conditions, with the kubelet's reason and message.
func TestStatusFromProbes(t *testing.T) {
	spec := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}
	a, b := container("a", 0, mruntime.ContainerRunning, 0), container("b", 0, mruntime.ContainerRunning, 0)
	pod := &mruntime.Pod{SandboxID: "s", Ready: true, CreatedAt: t0, Containers: []mruntime.Container{a, b}}
	for _, tc := range []struct {
		name           string
		probes         map[string]podstate.Probe
		ready, started []bool
		cond           corev1.ConditionStatus
		reason, msg    string
	}{
		{name: "no prober", ready: []bool{true, true}, started: []bool{true, true}, cond: corev1.ConditionTrue},
		{name: "all ready", probes: map[string]podstate.Probe{a.ID: {Started: true, Ready: true}, b.ID: {Started: true, Ready: true}},
			ready: []bool{true, true}, started: []bool{true, true}, cond: corev1.ConditionTrue},
		{name: "b not ready", probes: map[string]podstate.Probe{a.ID: {Started: true, Ready: true}, b.ID: {Started: true}},
			ready: []bool{true, false}, started: []bool{true, true}, cond: corev1.ConditionFalse,
			reason: "ContainersNotReady", msg: "containers with unready status: [b]"},
		{name: "a not started, b no result yet", probes: map[string]podstate.Probe{a.ID: {}},
			ready: []bool{false, false}, started: []bool{false, false}, cond: corev1.ConditionFalse,
			reason: "ContainersNotReady", msg: "containers with unready status: [a b]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Compute(Input{Spec: spec, HasState: true, Now: t0,
				State: podstate.State{Pod: pod, Probes: tc.probes}})
			for i, cs := range st.ContainerStatuses {
				if cs.Ready != tc.ready[i] || cs.Started == nil || *cs.Started != tc.started[i] {
					t.Errorf("%s: ready %v started %v, want %v %v", cs.Name, cs.Ready, cs.Started, tc.ready[i], tc.started[i])
				}
			}
			for _, ct := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
				c := findCondition(st, ct)
				if c == nil || c.Status != tc.cond || c.Reason != tc.reason || c.Message != tc.msg {
					t.Errorf("%s condition %+v, want %s %q %q", ct, c, tc.cond, tc.reason, tc.msg)
				}
			}
		})
	}
}

// Conditions carry the kubelet's reasons and messages, and every
// condition and the status the mirror's generation.
func TestConditionReasons(t *testing.T) {
	never := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{{Name: "init"}}, Containers: []corev1.Container{{Name: "c"}}}
	pod := func(cs ...mruntime.Container) *podstate.State {
		return &podstate.State{Pod: &mruntime.Pod{SandboxID: "s", Ready: true, CreatedAt: t0, Containers: cs}}
	}
	initDone := container("init", 0, mruntime.ContainerExited, 0)
	type cond struct{ status, reason, msg string }
	for _, tc := range []struct {
		name                   string
		state                  *podstate.State
		phase                  corev1.PodPhase
		initialized, readiness cond
	}{
		{name: "no sandbox yet", phase: corev1.PodPending,
			initialized: cond{"False", "ContainersNotInitialized", "containers with incomplete status: [init]"},
			readiness:   cond{"False", "ContainersNotReady", "containers with unready status: [c]"}},
		{name: "init running", state: pod(container("init", 0, mruntime.ContainerRunning, 0)), phase: corev1.PodPending,
			initialized: cond{"False", "ContainersNotInitialized", "containers with incomplete status: [init]"},
			readiness:   cond{"False", "ContainersNotReady", "containers with unready status: [c]"}},
		{name: "running", state: pod(initDone, container("c", 0, mruntime.ContainerRunning, 0)), phase: corev1.PodRunning,
			initialized: cond{"True", "", ""}, readiness: cond{"True", "", ""}},
		{name: "succeeded", state: pod(initDone, container("c", 0, mruntime.ContainerExited, 0)), phase: corev1.PodSucceeded,
			initialized: cond{"True", "PodCompleted", ""}, readiness: cond{"False", "PodCompleted", ""}},
		{name: "failed", state: pod(initDone, container("c", 0, mruntime.ContainerExited, 3)), phase: corev1.PodFailed,
			initialized: cond{"True", "", ""}, readiness: cond{"False", "PodFailed", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Spec: never, Now: t0, Generation: 7}
			if tc.state != nil {
				in.State, in.HasState = *tc.state, true
			}
			st := Compute(in)
			if st.Phase != tc.phase || st.ObservedGeneration != 7 {
				t.Errorf("phase %s observedGeneration %d, want %s 7", st.Phase, st.ObservedGeneration, tc.phase)
			}
			for ct, want := range map[corev1.PodConditionType]cond{corev1.PodInitialized: tc.initialized,
				corev1.ContainersReady: tc.readiness, corev1.PodReady: tc.readiness} {
				c := findCondition(st, ct)
				if c == nil || string(c.Status) != want.status || c.Reason != want.reason || c.Message != want.msg {
					t.Errorf("%s: %+v, want %+v", ct, c, want)
				}
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 7 {
					t.Errorf("%s observedGeneration %d, want 7", c.Type, c.ObservedGeneration)
				}
			}
		})
	}
}

// While a container's probes have no result yet (mirrorlet restarted under
// it), what the mirror showed for that same container ID holds; a new
// attempt starts unready.
func TestPendingProbesKeepWhatTheMirrorShowed(t *testing.T) {
	spec := &corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{Name: "a"}}}
	a := container("a", 0, mruntime.ContainerRunning, 0)
	pod := &mruntime.Pod{SandboxID: "s", Ready: true, CreatedAt: t0, Containers: []mruntime.Container{a}}
	shown := func(id string) corev1.PodStatus {
		return corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "a", ContainerID: "fake://" + id, Ready: true,
			Started: ptrTo(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	}
	for _, tc := range []struct {
		name  string
		probe podstate.Probe
		have  corev1.PodStatus
		ready bool
	}{
		{"pending, same attempt shown ready", podstate.Probe{Pending: true}, shown(a.ID), true},
		{"pending, another attempt shown", podstate.Probe{Pending: true}, shown("old"), false},
		{"result: not ready", podstate.Probe{Started: true}, shown(a.ID), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := Compute(Input{Spec: spec, HasState: true, Now: t0, Have: tc.have, RuntimeName: "fake",
				State: podstate.State{Pod: pod, Probes: map[string]podstate.Probe{a.ID: tc.probe}}})
			if cs := st.ContainerStatuses[0]; cs.Ready != tc.ready {
				t.Errorf("ready %v, want %v", cs.Ready, tc.ready)
			}
		})
	}
}

// The ManifestValid message says what runs: the last good version for a
// manifest that did not load, the static pod regardless for a start-order
// problem (the manifest loaded; only its order is ignored).
func TestManifestConditionSaysWhatRuns(t *testing.T) {
	bad := desired.Problem{Origin: "/m/p.yaml", Err: errors.New("/m/p.yaml: bad")}
	order := desired.Problem{Origin: "/m/p.yaml", VersionRuns: true, Err: errors.New(`/m/p.yaml: after: "x": unknown`)}
	for _, tc := range []struct {
		name     string
		problems []desired.Problem
		want     string
	}{
		{"bad manifest", []desired.Problem{bad}, "the last good version keeps running: /m/p.yaml: bad"},
		{"start order", []desired.Problem{order}, `the static pod runs regardless: /m/p.yaml: after: "x": unknown`},
		{"both", []desired.Problem{order, bad},
			`the last good version keeps running: /m/p.yaml: bad; /m/p.yaml: after: "x": unknown`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := manifestCondition(tc.problems)
			if c.Status != corev1.ConditionFalse || c.Reason != "InvalidManifest" || c.Message != tc.want {
				t.Errorf("condition %s %s %q, want False InvalidManifest %q", c.Status, c.Reason, c.Message, tc.want)
			}
		})
	}
}
