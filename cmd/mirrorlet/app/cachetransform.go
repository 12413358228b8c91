package app

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mirrorlet/mirrorlet/controllers/mirror"
)

// keepOwnManagedFields is the pod cache's transform: of a pod's
// managedFields it keeps only mirrorlet's own entries on the main resource
// (what the mirror reconciler reads to know which fields it owns, see
// mirror.ownedConfiguration) and drops the rest: the status entry and
// every other manager's, which nothing in mirrorlet reads. They are most
// of a cached mirror's managedFields, held once per pod and copied on
// every cache read. Safe because mirrorlet writes pods only by patch
// (apply, merge patches computed against the cached object, where
// managedFields are equal on both sides), never by update with a cached
// object.
func keepOwnManagedFields(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || len(pod.ManagedFields) == 0 {
		return obj, nil
	}
	kept := make([]metav1.ManagedFieldsEntry, 0, 1)
	for _, mf := range pod.ManagedFields {
		if mf.Manager == mirror.FieldManager && mf.Subresource == "" {
			kept = append(kept, mf)
		}
	}
	pod.ManagedFields = kept
	if len(kept) == 0 {
		pod.ManagedFields = nil
	}
	return pod, nil
}
