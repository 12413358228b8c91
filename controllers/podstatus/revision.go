package podstatus

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

// ConditionRolledBack is True while an earlier revision of the static pod
// runs in place of its manifest's (automatic rollback or mirrorlet
// rollback), with the reason and what failed; absent otherwise.
const ConditionRolledBack corev1.PodConditionType = "mirrorlet.io/RolledBack"

// rolledBackCondition is the RolledBack condition the static pod's
// annotations call for (set by the revision store when a pin runs).
func rolledBackCondition(annotations map[string]string) (corev1.PodCondition, bool) {
	reason := annotations[revisions.AnnotationPinnedReason]
	if reason == "" {
		return corev1.PodCondition{}, false
	}
	return corev1.PodCondition{
		Type: ConditionRolledBack, Status: corev1.ConditionTrue,
		Reason: reason, Message: annotations[revisions.AnnotationPinnedMessage],
	}, true
}
