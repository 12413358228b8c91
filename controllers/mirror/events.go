package mirror

import (
	corev1 "k8s.io/api/core/v1"
)

// recordEvents tells users, on the mirror, why a container does not run:
// one Warning each time a container enters a failure state.
func (r *Reconciler) recordEvents(mirror *corev1.Pod, old, st corev1.PodStatus) {
	was := map[string]string{}
	for _, cs := range append(old.InitContainerStatuses, old.ContainerStatuses...) {
		if cs.State.Waiting != nil {
			was[cs.Name] = cs.State.Waiting.Reason
		}
	}
	for _, cs := range append(st.InitContainerStatuses, st.ContainerStatuses...) {
		w := cs.State.Waiting
		if w == nil || w.Reason == was[cs.Name] {
			continue
		}
		switch w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "CreateContainerError":
			r.cfg.Recorder.Eventf(mirror, nil, corev1.EventTypeWarning, w.Reason, "StartContainer",
				"container %s: %s", cs.Name, w.Message)
		case "CrashLoopBackOff":
			r.cfg.Recorder.Eventf(mirror, nil, corev1.EventTypeWarning, "BackOff", "StartContainer",
				"Back-off restarting failed container %s", cs.Name)
		}
	}
}
