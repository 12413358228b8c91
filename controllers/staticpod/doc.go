// Package staticpod is the static pod reconciler: it makes the container
// runtime run exactly the desired set. For every static pod it starts the
// sandbox, runs init containers in order, starts the app containers, restarts
// them as restartPolicy says with the kubelet's back-off (10 s doubling to
// 5 min, reset after 10 min without a crash), replaces a pod whose spec hash
// changed (old stopped gracefully, then new started) and stops pods whose
// manifest is gone.
//
// It is the only writer to the runtime and it never reads the API server:
// an API outage, or a deleted mirror, never stops a container. Pods are
// recognised by the runtime's labels, so a restarted mirrorlet adopts what
// runs instead of starting it again. It publishes what it observes to a
// podstate.Store for the mirror reconciler.
//
// Until every manifest source has published once (desired.Set.Synced), a
// runtime pod without a manifest is left alone rather than stopped.
package staticpod
