package prober

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// probeType names a probe as the kubelet does in Events and metrics.
type probeType string

const (
	liveness  probeType = "Liveness"
	readiness probeType = "Readiness"
	startup   probeType = "Startup"
)

// result is the state of one probe of one attempt.
type result int

const (
	unknown result = iota
	success
	failure
	// warning is a success that deserves a word (an HTTP redirect to
	// another host, not followed); it is recorded as success.
	warning
)

func (r result) String() string {
	switch r {
	case success, warning:
		return "successful"
	case failure:
		return "failed"
	}
	return "unknown"
}

// attempt holds the probe results of one running container attempt.
type attempt struct {
	uid    types.UID
	key    types.NamespacedName
	cancel context.CancelFunc
	// specs and workers are fixed once the attempt is made.
	specs   map[probeType]*corev1.Probe
	workers map[probeType]*worker

	mu      sync.Mutex
	results map[probeType]result
	// messages holds the output of each probe's last recorded failure.
	messages map[probeType]string
	// recorded holds the probes that have recorded a result.
	recorded map[probeType]bool
}

func newAttempt(pod *corev1.Pod, c *corev1.Container, cancel context.CancelFunc) *attempt {
	a := &attempt{
		uid: pod.UID, key: types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name},
		cancel: cancel, specs: map[probeType]*corev1.Probe{}, workers: map[probeType]*worker{},
		results: map[probeType]result{}, messages: map[probeType]string{}, recorded: map[probeType]bool{},
	}
	for pt, p := range map[probeType]*corev1.Probe{liveness: c.LivenessProbe, readiness: c.ReadinessProbe, startup: c.StartupProbe} {
		if p != nil {
			a.specs[pt] = effective(p)
		}
	}
	// The kubelet's initial values: liveness succeeds until it fails,
	// readiness fails until it succeeds, startup is unknown.
	a.results[liveness], a.results[readiness], a.results[startup] = success, failure, unknown
	return a
}

// effective returns a copy of p with the API server's defaults applied
// (as manifests are defaulted when they load).
func effective(p *corev1.Probe) *corev1.Probe {
	p = p.DeepCopy()
	manifest.DefaultProbe(p)
	return p
}

// set records a probe's result and reports whether the attempt's Status
// changed.
func (a *attempt) set(pt probeType, r result, message string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	before := a.statusLocked()
	a.results[pt] = r
	a.recorded[pt] = true
	if r == failure {
		a.messages[pt] = message
	}
	after := a.statusLocked()
	return before.Started != after.Started || before.Ready != after.Ready || before.LivenessFailed != after.LivenessFailed ||
		before.Pending != after.Pending
}

// started reports whether the startup probe succeeded (or there is none).
func (a *attempt) started() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.startedLocked()
}

func (a *attempt) startedLocked() bool {
	return a.specs[startup] == nil || a.results[startup] == success
}

func (a *attempt) status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.statusLocked()
}

func (a *attempt) statusLocked() Status {
	s := Status{Started: a.startedLocked()}
	for _, pt := range []probeType{startup, readiness} {
		s.Pending = s.Pending || (a.specs[pt] != nil && !a.recorded[pt])
	}
	s.Ready = s.Started && (a.specs[readiness] == nil || a.results[readiness] == success)
	for _, pt := range []probeType{startup, liveness} {
		if a.specs[pt] != nil && a.results[pt] == failure {
			s.LivenessFailed = true
			s.Message = a.messages[pt]
			if g := a.specs[pt].TerminationGracePeriodSeconds; g != nil {
				s.KillGrace = ptr.To(time.Duration(*g) * time.Second)
			}
			break
		}
	}
	if !s.Ready && !s.LivenessFailed && a.specs[readiness] != nil && a.results[readiness] == failure {
		s.Message = a.messages[readiness]
	}
	return s
}

// poke makes the worker of pt probe now, if there is one.
func (a *attempt) poke(pt probeType) {
	if w := a.workers[pt]; w != nil {
		select {
		case w.trigger <- struct{}{}:
		default:
		}
	}
}
