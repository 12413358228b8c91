package prober

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// script makes exec probes answer by the command's first word: the exit
// code it holds for that word (0 unless set).
type script struct {
	mu    sync.Mutex
	codes map[string]int32
}

func (s *script) set(word string, code int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[word] = code
}

func (s *script) ExecSync(_ context.Context, _ string, cmd []string, _ time.Duration) ([]byte, []byte, int32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := s.codes[cmd[0]]
	if code != 0 {
		return []byte(cmd[0] + " failed"), nil, code, nil
	}
	return nil, nil, 0, nil
}

func newScripted(t *testing.T, mutate ...func(*Config)) (*harness, *script) {
	s := &script{codes: map[string]int32{}}
	h := newHarness(t, append([]func(*Config){func(c *Config) { c.Execer = s }}, mutate...)...)
	return h, s
}

func execProbe(word string, period, failures, successes int32) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{word}}},
		PeriodSeconds: period, FailureThreshold: failures, SuccessThreshold: successes}
}

func TestThresholds(t *testing.T) {
	h, s := newScripted(t)
	h.run(corev1.Container{Name: "web", ReadinessProbe: execProbe("ready", 1, 2, 3)}, "c1")
	// successThreshold 3: ready only after the third success in a row.
	for i := range 3 {
		if i > 0 {
			h.step(1, time.Second)
		}
		h.expect(readiness, success)
		if got := h.m.Status(testUID, "c1").Ready; got != (i == 2) {
			t.Fatalf("after %d successes: ready %v", i+1, got)
		}
	}
	// failureThreshold 2: one failure changes nothing; a success in
	// between starts the count again.
	s.set("ready", 1)
	h.step(1, time.Second)
	h.expect(readiness, failure)
	if !h.m.Status(testUID, "c1").Ready {
		t.Fatal("not ready after one failure of two")
	}
	h.step(1, time.Second)
	h.expect(readiness, failure)
	h.status("c1", notReady)
}

func TestLivenessFailureHoldsAndResetsOnNewContainer(t *testing.T) {
	h, s := newScripted(t)
	probe := execProbe("live", 10, 3, 1)
	probe.TerminationGracePeriodSeconds = ptr.To[int64](7)
	c := corev1.Container{Name: "web", LivenessProbe: probe}
	h.run(c, "c1")
	if st := h.m.Status(testUID, "c1"); !st.Started || !st.Ready || st.LivenessFailed {
		t.Fatalf("initial status %+v: liveness succeeds until it fails", st)
	}
	h.expect(liveness, success)
	s.set("live", 1)
	for i := range 3 {
		h.step(1, 10*time.Second)
		h.expect(liveness, failure)
		if i < 2 && h.m.Status(testUID, "c1").LivenessFailed {
			t.Fatalf("failed after %d failures of 3", i+1)
		}
	}
	st := h.status("c1", failed)
	if st.KillGrace == nil || *st.KillGrace != 7*time.Second || st.Message != "live failed" {
		t.Errorf("status %+v", st)
	}
	h.clk.Step(time.Minute)
	h.none() // on hold until a new container ID

	// The engine restarted the container: results start afresh.
	s.set("live", 0)
	h.run(c, "c2")
	if st := h.m.Status(testUID, "c2"); st.LivenessFailed || !st.Ready {
		t.Errorf("new attempt inherited results: %+v", st)
	}
	if st := h.m.Status(testUID, "c1"); st != (Status{}) {
		t.Errorf("the old attempt is still known: %+v", st)
	}
	h.expect(liveness, success)
}

func TestInitialDelay(t *testing.T) {
	h, _ := newScripted(t)
	// The first probe comes initialDelaySeconds after the start, not at
	// the first period after it.
	probe := execProbe("ready", 10, 1, 1)
	probe.InitialDelaySeconds = 5
	h.run(corev1.Container{Name: "web", ReadinessProbe: probe}, "c1")
	h.step(1, 4*time.Second)
	h.none()
	h.status("c1", notReady)
	h.step(1, time.Second)
	h.expect(readiness, success)
	h.status("c1", ready)
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	h, s := newScripted(t)
	s.set("start", 1)
	s.set("live", 1) // would kill the container if probed before start-up
	startupProbe := execProbe("start", 1, 5, 1)
	startupProbe.TerminationGracePeriodSeconds = ptr.To[int64](3)
	h.run(corev1.Container{Name: "web", StartupProbe: startupProbe,
		LivenessProbe: execProbe("live", 1, 1, 1), ReadinessProbe: execProbe("ready", 100, 1, 1)}, "c1")
	for range 3 {
		h.expect(startup, failure)
		if st := h.m.Status(testUID, "c1"); st.Started || st.Ready || st.LivenessFailed {
			t.Fatalf("status during start-up: %+v", st)
		}
		h.step(3, time.Second)
	}
	s.set("start", 0)
	s.set("live", 0)
	// Readiness is probed at once on start-up, though its period is 100s
	// (liveness may be probed too if its tick came after start-up).
	seen := map[probeType]bool{}
	for !seen[startup] || !seen[readiness] {
		e := h.next()
		if e.r != success {
			t.Fatalf("probe %s %s", e.pt, e.r)
		}
		seen[e.pt] = true
	}
	h.status("c1", ready)
	select {
	case uid := <-h.changes:
		if uid != testUID {
			t.Errorf("OnChange(%s)", uid)
		}
	default:
		t.Error("no OnChange")
	}
}

func TestStartupFailureKills(t *testing.T) {
	h, s := newScripted(t)
	s.set("start", 1)
	startupProbe := execProbe("start", 1, 2, 1)
	startupProbe.TerminationGracePeriodSeconds = ptr.To[int64](3)
	h.run(corev1.Container{Name: "web", StartupProbe: startupProbe, LivenessProbe: execProbe("live", 1, 1, 1)}, "c1")
	h.expect(startup, failure)
	h.step(2, time.Second)
	h.expect(startup, failure)
	st := h.status("c1", failed)
	if st.Started || st.KillGrace == nil || *st.KillGrace != 3*time.Second || st.Message != "start failed" {
		t.Errorf("status %+v", st)
	}
}

func TestJitterForContainersRunningBeforeStart(t *testing.T) {
	var asked time.Duration
	h, _ := newScripted(t, func(c *Config) {
		c.Jitter = func(max time.Duration) time.Duration { asked = max; return 4 * time.Second }
	})
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name, pod.UID = testKey.Namespace, testKey.Name, testUID
	pod.Spec.Containers = []corev1.Container{{Name: "web", ReadinessProbe: execProbe("ready", 10, 1, 1)}}
	// Running for an hour when mirrorlet (re)started.
	h.m.UpdatePod(pod, []Running{{Name: "web", ID: "c1", StartedAt: h.clk.Now().Add(-time.Hour)}})
	h.step(1, 3*time.Second)
	h.none()
	h.step(1, time.Second)
	h.expect(readiness, success)
	if asked != 10*time.Second {
		t.Errorf("jitter asked for at most %v, want one period", asked)
	}
	// A container that starts later is probed at once.
	h.m.RemovePod(testUID)
	h.clk.Step(time.Minute)
	h.run(pod.Spec.Containers[0], "c2")
	if e := h.next(); e.containerID != "c2" {
		t.Errorf("probe of %s", e.containerID)
	}
}

func TestEventsRateLimited(t *testing.T) {
	h, s := newScripted(t, func(c *Config) { c.EventBurst, c.EventInterval = 2, 30*time.Second })
	s.set("ready", 1)
	h.run(corev1.Container{Name: "web", ReadinessProbe: execProbe("ready", 10, 1, 1)}, "c1")
	h.expect(readiness, failure)
	for range 6 {
		h.step(1, 10*time.Second)
		h.expect(readiness, failure)
	}
	// Failures every 10 s from 0 to 60 s; a burst of 2, then one per 30 s:
	// Events at 0, 10, 30 and 60 s.
	if ev := h.events.all(); len(ev) != 4 || ev[0].message != "Readiness probe failed: ready failed" {
		t.Errorf("events %+v", ev)
	}
}

func TestHostNetworkUsesNodeIP(t *testing.T) {
	h := newHarness(t)
	srv := newCodeServer(t, http.StatusOK)
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name, pod.UID = testKey.Namespace, testKey.Name, testUID
	pod.Spec.HostNetwork = true
	pod.Spec.Containers = []corev1.Container{{Name: "web",
		ReadinessProbe: readinessHTTP(intstr.FromInt(hostPort(t, srv.srv.Listener.Addr().String())), "/")}}
	h.m.UpdatePod(pod, []Running{{Name: "web", ID: "c1", StartedAt: h.clk.Now()}}) // NodeIP is 127.0.0.1
	h.expect(readiness, success)
}

func TestRemovePodAndUnknownAttempts(t *testing.T) {
	h, _ := newScripted(t)
	pod := h.run(corev1.Container{Name: "web", ReadinessProbe: execProbe("ready", 1, 1, 1)}, "c1")
	h.expect(readiness, success)
	h.status("c1", ready)
	h.m.UpdatePod(pod, []Running{{Name: "nope", ID: "x"}}) // an unknown container: ignored
	if st := h.m.Status(testUID, "c1"); st != (Status{}) {
		t.Errorf("an attempt no longer running kept its status %+v", st)
	}
	h.run(pod.Spec.Containers[0], "c2")
	h.expect(readiness, success)
	h.m.RemovePod(testUID)
	if st := h.m.Status(testUID, "c2"); st != (Status{}) {
		t.Errorf("status after RemovePod %+v", st)
	}
	h.clk.Step(time.Minute)
	h.none()
	if h.m.Status(types.UID("other"), "c2") != (Status{}) {
		t.Error("unknown pod has a status")
	}
}

func TestNoProbesStartedAndReady(t *testing.T) {
	h, _ := newScripted(t)
	h.run(corev1.Container{Name: "web"}, "c1")
	if st := h.m.Status(testUID, "c1"); !st.Started || !st.Ready || st.LivenessFailed {
		t.Errorf("status %+v", st)
	}
	if uid := <-h.changes; uid != testUID {
		t.Errorf("OnChange(%s)", uid)
	}
}

func TestMetrics(t *testing.T) {
	before := counter(t, "Readiness", "failed")
	h, s := newScripted(t)
	s.set("ready", 1)
	h.run(corev1.Container{Name: "web", ReadinessProbe: execProbe("ready", 1, 1, 1)}, "c1")
	h.expect(readiness, failure)
	if got := counter(t, "Readiness", "failed"); got != before+1 {
		t.Errorf("mirrorlet_prober_probe_total{Readiness,failed} = %v, want %v", got, before+1)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{NodeIP: "10.0.0.1"}, "Execer is required"},
		{Config{Execer: &script{}, NodeIP: "node1"}, `node IP "node1" is not an IP address`},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want %q", tc.cfg, err, tc.want)
		}
	}
	m, err := New(Config{Execer: &script{}, NodeIP: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Start(ctx); err != nil || !errors.Is(m.ctx.Err(), context.Canceled) {
		t.Errorf("Start: %v, manager context %v", err, m.ctx.Err())
	}
}

func counter(t *testing.T, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := probes.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
