package podstatus

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

func TestRolledBackConditionFollowsThePin(t *testing.T) {
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}
	find := func(annotations map[string]string) *corev1.PodCondition {
		st := Compute(Input{Spec: spec, Annotations: annotations, Now: time.Unix(100, 0)})
		for i := range st.Conditions {
			if st.Conditions[i].Type == ConditionRolledBack {
				return &st.Conditions[i]
			}
		}
		return nil
	}
	if c := find(map[string]string{revisions.AnnotationRevision: "3"}); c != nil {
		t.Errorf("condition %+v without a pin", c)
	}
	c := find(map[string]string{revisions.AnnotationRevision: "1", revisions.AnnotationPinnedReason: revisions.ReasonNotReady,
		revisions.AnnotationPinnedMessage: "revision 2 was not Ready within 10s"})
	if c == nil || c.Status != corev1.ConditionTrue || c.Reason != revisions.ReasonNotReady || c.Message != "revision 2 was not Ready within 10s" {
		t.Errorf("condition while pinned: %+v", c)
	}
}
