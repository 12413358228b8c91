package manifest

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// AnnotationRollbackAfter opts a static pod into automatic rollback: a new
// revision that is not Ready this long after it appeared (a Go duration,
// e.g. "2m"), or that crash-loops before, is replaced by the previous good
// revision.
const AnnotationRollbackAfter = "mirrorlet.io/rollback-after"

// RollbackAfter returns the pod's rollback window; ok is false when the
// pod has none (or an invalid one, which Validate refuses).
func RollbackAfter(pod *corev1.Pod) (time.Duration, bool) {
	return durationAnnotation(pod, AnnotationRollbackAfter)
}

// durationAnnotation returns the value of the annotation key, a positive
// Go duration; ok is false when it is absent or invalid (Validate refuses
// an invalid one: validateDurationAnnotation).
func durationAnnotation(pod *corev1.Pod, key string) (time.Duration, bool) {
	v, ok := pod.Annotations[key]
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// validateDurationAnnotation checks that the annotation key, when set, is
// a positive Go duration (mirrorlet.io/rollback-after,
// mirrorlet.io/after-timeout).
func validateDurationAnnotation(pod *corev1.Pod, key string) field.ErrorList {
	v, ok := pod.Annotations[key]
	if !ok {
		return nil
	}
	path := field.NewPath("metadata", "annotations").Key(key)
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(path, v, fmt.Sprintf("must be a duration such as 2m or 90s: %v", err))}
	case d <= 0:
		return field.ErrorList{field.Invalid(path, v, "must be positive")}
	}
	return nil
}
