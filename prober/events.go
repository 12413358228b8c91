package prober

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Event reasons, as the kubelet's.
const (
	ReasonUnhealthy    = "Unhealthy"
	ReasonProbeWarning = "ProbeWarning"
)

// maxEventMessage bounds the probe output quoted in an Event.
const maxEventMessage = 1024

// report logs a probe that did not succeed and records it as a Warning
// Event on the mirror, in the kubelet's words ("Liveness probe failed:
// ..."), as the worker's rate limit allows (Config.EventBurst and
// EventInterval).
func (w *worker) report(r result, out string, err error) {
	var reason, msg string
	switch {
	case err != nil:
		reason, msg = ReasonUnhealthy, fmt.Sprintf("%s probe errored: %v", w.pt, err)
	case r == failure:
		reason, msg = ReasonUnhealthy, fmt.Sprintf("%s probe failed: %s", w.pt, out)
	case r == warning:
		reason, msg = ReasonProbeWarning, fmt.Sprintf("%s probe warning: %s", w.pt, out)
	default:
		return
	}
	w.m.cfg.Log.V(1).Info("Probe did not succeed", "pod", w.a.key, "container", w.container.Name,
		"containerID", w.containerID, "probeType", w.pt, "message", msg)
	if !w.events.AllowN(w.m.cfg.Clock.Now(), 1) {
		return
	}
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage] + "..."
	}
	w.m.cfg.Events.Event(w.a.key, w.container.Name, corev1.EventTypeWarning, reason, msg)
}
