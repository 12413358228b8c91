package mirror

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mirrorlet/mirrorlet/controllers/podstatus"
	"github.com/mirrorlet/mirrorlet/manifest"
)

// recordEvents tells users, on the mirror, why a container does not run or
// why its manifest is not loaded: one Warning each time that starts.
func (r *Reconciler) recordEvents(mirror *corev1.Pod, old, st corev1.PodStatus) {
	if c := podCondition(st, podstatus.ConditionManifestValid); c != nil && c.Status == corev1.ConditionFalse {
		if was := podCondition(old, podstatus.ConditionManifestValid); was == nil || was.Status != c.Status || was.Message != c.Message {
			r.cfg.Recorder.Eventf(EventRef(mirror), nil, corev1.EventTypeWarning, "FailedLoadManifest", "LoadManifest", "%s", c.Message)
		}
	}
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
		case "ErrImagePull", "ErrImageNeverPull", "ImagePullBackOff", "CreateContainerError", "CreateContainerConfigError":
			r.cfg.Recorder.Eventf(ContainerEventRef(mirror, cs.Name), nil, corev1.EventTypeWarning, w.Reason, "StartContainer",
				"container %s: %s", cs.Name, w.Message)
		case "CrashLoopBackOff":
			r.cfg.Recorder.Eventf(ContainerEventRef(mirror, cs.Name), nil, corev1.EventTypeWarning, "BackOff", "StartContainer",
				"Back-off restarting failed container %s", cs.Name)
		}
	}
}

func podCondition(st corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// EventRef is what Events about a mirror pod regard: the mirror by name,
// with the static pod's UID (its kubernetes.io/config.mirror hash) as the
// kubelet records them. `kubectl describe pod` looks a mirror's Events up
// by that UID, so Events on the mirror's own UID would never show there.
func EventRef(mirror *corev1.Pod) *corev1.ObjectReference {
	uid := mirror.UID
	if h := mirror.Annotations[manifest.AnnotationMirror]; h != "" {
		uid = types.UID(h)
	}
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: mirror.Namespace, Name: mirror.Name, UID: uid}
}

// ContainerEventRef is EventRef about the named container of mirror, with
// the fieldPath the kubelet gives the Events it records about a container
// (spec.containers{web}, spec.initContainers{init}); "" names the pod
// itself. The recorder folds Events that share what they regard, their
// reason and action into one series that keeps the first note, so without
// it the Event of a second container would only count in the first's.
func ContainerEventRef(mirror *corev1.Pod, container string) *corev1.ObjectReference {
	ref := EventRef(mirror)
	switch {
	case container == "":
	case slices.ContainsFunc(mirror.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == container }):
		ref.FieldPath = "spec.initContainers{" + container + "}"
	default:
		ref.FieldPath = "spec.containers{" + container + "}"
	}
	return ref
}
