package app

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mirrorlet/mirrorlet/controllers/mirror"
)

func TestKeepOwnManagedFields(t *testing.T) {
	own := metav1.ManagedFieldsEntry{Manager: mirror.FieldManager, Operation: metav1.ManagedFieldsOperationApply}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{
		own,
		{Manager: mirror.FieldManager, Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status"},
		{Manager: "kubectl-label", Operation: metav1.ManagedFieldsOperationUpdate},
		{Manager: "webhook", Operation: metav1.ManagedFieldsOperationUpdate},
	}}}
	out, err := keepOwnManagedFields(pod)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Pod).ManagedFields
	if len(got) != 1 || got[0].Manager != own.Manager || got[0].Subresource != "" || got[0].Operation != own.Operation {
		t.Fatalf("kept %+v, want only mirrorlet's entry on the main resource", got)
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-scheduler"}}}}
	if out, _ := keepOwnManagedFields(other); out.(*corev1.Pod).ManagedFields != nil {
		t.Fatalf("a pod mirrorlet does not own kept %+v", out.(*corev1.Pod).ManagedFields)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "x"}}}}
	if out, _ := keepOwnManagedFields(node); len(out.(*corev1.Node).ManagedFields) != 1 {
		t.Fatal("a Node was changed")
	}
}
