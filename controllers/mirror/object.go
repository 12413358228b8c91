package mirror

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// isMirror reports whether pod is a mirror pod (of anyone).
func isMirror(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[manifest.AnnotationMirror]
	return ok
}

// desiredMirror builds the mirror of sp, owned by node.
func Build(sp *manifest.StaticPod, node *corev1.Node) *corev1.Pod {
	annotations := maps.Clone(sp.Pod.Annotations)
	annotations[manifest.AnnotationMirror] = sp.Hash
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            sp.Pod.Name,
			Namespace:       sp.Pod.Namespace,
			Labels:          maps.Clone(sp.Pod.Labels),
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{nodeOwner(node)},
		},
		Spec: *sp.Pod.Spec.DeepCopy(),
	}
}

func nodeOwner(node *corev1.Node) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: "v1",
		Kind:       "Node",
		Name:       node.Name,
		UID:        node.UID,
		Controller: ptr.To(true),
	}
}

// needsRecreate reports whether mirror can no longer be fixed in place:
// another spec hash, being deleted, or a spec field edited through the API
// (images and deadlines are mutable on pods; mirrors are read-only).
func needsRecreate(mirror, want *corev1.Pod) bool {
	if mirror.Annotations[manifest.AnnotationMirror] != want.Annotations[manifest.AnnotationMirror] ||
		mirror.DeletionTimestamp != nil {
		return true
	}
	return specEdited(mirror.Spec, want.Spec)
}

func specEdited(have, want corev1.PodSpec) bool {
	if len(have.Containers) != len(want.Containers) || len(have.InitContainers) != len(want.InitContainers) {
		return true
	}
	for i := range want.Containers {
		if have.Containers[i].Image != want.Containers[i].Image {
			return true
		}
	}
	for i := range want.InitContainers {
		if have.InitContainers[i].Image != want.InitContainers[i].Image {
			return true
		}
	}
	return !ptr.Equal(have.ActiveDeadlineSeconds, want.ActiveDeadlineSeconds) ||
		len(have.Tolerations) != len(want.Tolerations)
}

// metadataDiffers reports whether labels, annotations, owners or finalizers
// of mirror differ from want.
func metadataDiffers(mirror, want *corev1.Pod) bool {
	return !maps.Equal(mirror.Labels, want.Labels) ||
		!maps.Equal(mirror.Annotations, want.Annotations) ||
		!equality.Semantic.DeepEqual(mirror.OwnerReferences, want.OwnerReferences) ||
		len(mirror.Finalizers) > 0
}
