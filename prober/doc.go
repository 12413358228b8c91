// Package prober runs the liveness, readiness and startup probes of static
// pods' containers, with the kubelet's semantics (pkg/kubelet/prober).
//
// The pod engine (controllers/staticpod) tells the Manager after each sync
// which container attempts of a pod run (UpdatePod) and reads the result of
// each attempt (Status). The Manager runs one goroutine per container
// attempt and probe type. A worker waits initialDelaySeconds after the
// container started (or, for a container that was already running when
// mirrorlet started, at least a random part of one period, so that a
// restarted mirrorlet does not probe everything at once), then probes every
// periodSeconds with timeoutSeconds; a result changes only after
// successThreshold successes or failureThreshold failures in a row. Until
// the startup probe succeeds, liveness and readiness are not probed.
// Readiness starts false and liveness and startup start "not failed". A
// liveness or startup failure stops the attempt's probing until the engine
// has killed it: results belong to one container ID, so a restarted
// container starts afresh. Every change of a result calls Config.OnChange
// with the pod's UID, so that the engine syncs the pod at once.
//
// Probes run from mirrorlet itself, so images need no curl or nc: exec
// through the runtime's ExecSync, httpGet, tcpSocket and grpc (the
// grpc.health.v1 protocol) against the pod IP, or the node IP for
// hostNetwork pods. Failures are Unhealthy Warning Events ("Liveness probe
// failed: ...") through Config.Events, and every probe is counted in
// mirrorlet_prober_probe_total{probe_type,result}.
package prober
