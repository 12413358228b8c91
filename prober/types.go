package prober

import "time"

// Running is one running container attempt.
type Running struct {
	Name      string // container name in the pod spec
	ID        string // runtime container ID
	StartedAt time.Time
	PodIP     string // "" for hostNetwork pods
}

// Status is what the probes say about one container attempt.
type Status struct {
	// Started: the startup probe succeeded (true when there is none).
	Started bool
	// Ready: the readiness probe succeeds (true when there is none), and
	// Started; always false before the startup probe succeeded.
	Ready bool
	// LivenessFailed: the liveness (or startup) probe failed
	// failureThreshold times in a row: the worker must kill the container
	// (with KillGrace if set, else the pod's terminationGracePeriodSeconds)
	// and restart it as restartPolicy says.
	LivenessFailed bool
	// Message says why (the last probe's output / error), for Events.
	Message string
	// KillGrace is the probe's terminationGracePeriodSeconds, if set.
	KillGrace *time.Duration
	// Pending: a startup or readiness probe has no result yet for this
	// attempt, so Started and Ready are only the initial values (after a
	// restart of mirrorlet under a running container, say).
	Pending bool
}
