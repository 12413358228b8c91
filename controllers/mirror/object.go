package mirror

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
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
