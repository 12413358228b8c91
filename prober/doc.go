// Package prober runs the liveness, readiness and startup probes of static
// pods' containers, as the kubelet's prober does: one worker per container
// and probe, results reset on a new container ID, liveness failures reported
// to the pod worker that owns the container (package controllers/staticpod),
// which kills and restarts it.
//
// The values exchanged with the pod workers (Running, Status) are defined
// here so that both sides build against the same types.
package prober
