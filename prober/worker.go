package prober

import (
	"context"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
)

// worker probes one container attempt with one probe until its context
// ends, the startup probe succeeded, or a liveness or startup probe failed
// (the engine then kills the attempt; a new attempt gets new workers).
type worker struct {
	m         *Manager
	a         *attempt
	pt        probeType
	spec      *corev1.Probe // defaulted
	container *corev1.Container
	// host is the pod IP, or the node IP for hostNetwork pods.
	host        string
	containerID string
	startedAt   time.Time
	trigger     chan struct{}

	// last is the last probe result and run how many times in a row it came.
	last result
	run  int
	// events rate-limits the worker's Events (on the Manager's clock).
	events *rate.Limiter
}

func (w *worker) period() time.Duration {
	return time.Duration(w.spec.PeriodSeconds) * time.Second
}

// loop probes once per period until the worker is done.
func (w *worker) loop(ctx context.Context) {
	wait := w.firstWait()
	for w.sleep(ctx, wait) && w.tick(ctx) {
		wait = w.period()
	}
}

// firstWait is how long to wait before the first probe: until
// initialDelaySeconds after the container started, and for a container
// that ran before the Manager was made, at least a random part of a period.
func (w *worker) firstWait() time.Duration {
	now := w.m.cfg.Clock.Now()
	wait := w.startedAt.Add(time.Duration(w.spec.InitialDelaySeconds) * time.Second).Sub(now)
	if w.startedAt.Before(w.m.start) {
		wait = max(wait, w.m.cfg.Jitter(w.period()))
	}
	return max(wait, 0)
}

// sleep waits d (or until the worker is poked) and reports whether to go on.
func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := w.m.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
	case <-w.trigger:
	}
	return ctx.Err() == nil
}

// tick probes once if the probe is due and records the result. It reports
// whether the worker goes on.
func (w *worker) tick(ctx context.Context) bool {
	started := w.a.started()
	switch {
	case w.pt == startup && started:
		return false
	case w.pt != startup && !started:
		return true // startup gates liveness and readiness
	case w.m.cfg.Clock.Since(w.startedAt) < time.Duration(w.spec.InitialDelaySeconds)*time.Second:
		return true // poked before its initial delay
	}
	r, out, err := w.m.probe(ctx, w)
	if ctx.Err() != nil {
		return false // stopped while probing: the result means nothing
	}
	probes.WithLabelValues(string(w.pt), r.String()).Inc()
	w.report(r, out, err)
	if r == warning {
		r = success
	}
	goOn := err != nil || w.record(r, out) // an error keeps the last result
	if w.m.probed != nil {
		w.m.probed(w.pt, w.containerID, r)
	}
	return goOn
}

// record counts r towards its threshold and, once reached, sets it.
func (w *worker) record(r result, out string) bool {
	if r == w.last {
		w.run++
	} else {
		w.last, w.run = r, 1
	}
	if (r == failure && w.run < int(w.spec.FailureThreshold)) || (r == success && w.run < int(w.spec.SuccessThreshold)) {
		return true
	}
	if w.a.set(w.pt, r, out) {
		w.m.cfg.Log.V(1).Info("Probe result changed", "pod", w.a.key, "container", w.container.Name,
			"containerID", w.containerID, "probeType", w.pt, "result", r.String(), "output", out)
		if w.pt == startup && r == success {
			w.a.poke(readiness)
		}
		w.m.cfg.OnChange(w.a.uid)
	}
	switch {
	case w.pt == startup && r == success:
		return false // started: nothing more to probe
	case w.pt != readiness && r == failure:
		return false // the engine kills this attempt
	}
	return true
}
