// Package staticpod runs the static pods of the desired set on the container
// runtime, with the kubelet's model: one pod worker (a goroutine) per static
// pod, fed by one runtime cache (package runtime/pleg).
//
// A worker wakes when its pod's desired version changes, when the cache sees
// its pod change in the runtime, when a back-off ends or when the prober
// reports a new result (OnChange); every worker also syncs once per sync
// frequency (1 min, the kubelet's --sync-frequency), a safety net that no
// restart, back-off or probe waits for. It syncs that one pod: stops other
// versions and dead sandboxes (each with its grace period), makes the
// sandbox, runs init containers in order, then the app containers, restarts
// them as restartPolicy says with the kubelet's back-off (10 s doubling to
// 5 min, reset after 10 min without a crash), kills a container whose
// liveness probe failed, and stops the sandbox of a pod that finished
// (Succeeded or Failed under Never/OnFailure) while keeping its final
// container states. After acting it waits for a cache refresh newer than
// its action, so it never decides twice on stale state. At most one sync
// per pod runs at a time, and a pull or a grace period of one pod never
// delays another: workers run in parallel. The worker of a pod that is gone
// stops it, removes its data (volumes, logs) and ends.
//
// Container attempts are numbered per pod UID across sandboxes (recorded on
// each new sandbox, mruntime.AnnotationAttempts), so restart counts survive
// a lost sandbox and a restart of mirrorlet. A container left Created or
// Unknown (mirrorlet killed between create and start, a start that timed
// out) is removed and the next attempt started; a failed start is an exited
// attempt (StartError) that restartPolicy governs.
//
// The engine is the only writer to the runtime and never reads the API
// server: an API outage, or a deleted mirror, never stops a container. It
// publishes what it observes to a podstate.Store for the mirror reconciler.
// Until every manifest source has published once (desired.Set.Synced), a
// runtime pod without a manifest is left alone rather than stopped.
//
// Two opt-in annotations of the manifest act here (startorder.go,
// hostfiles.go). mirrorlet.io/after holds the containers of a new sandbox
// (waiting, reason WaitingForDependencies) until the named static pods are
// Ready by their published state, or mirrorlet.io/after-timeout passed; a
// sandbox that runs containers is never held back. With
// mirrorlet.io/restart-on-change the worker tells the FileWatcher which
// host paths to watch and, once per change it reports, stops the pod's
// running containers with the pod's grace period and starts them again
// without back-off.
package staticpod
