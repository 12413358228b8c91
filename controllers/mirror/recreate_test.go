package mirror

import (
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestPatchForbidden(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"Node authorizer and RBAC", apierrors.NewForbidden(pods, "web-n1",
			errors.New(`User "system:node:n1" cannot patch resource "pods" in API group "" in the namespace "default"`)), true},
		{"NodeRestriction", apierrors.NewForbidden(pods, "web-n1",
			errors.New(`unexpected operation "UPDATE", node "n1" can only create and delete mirror pods`)), true},
		{"an admission policy", apierrors.NewForbidden(pods, "web-n1",
			errors.New(`ValidatingAdmissionPolicy 'labels' denied request: label x is not allowed`)), false},
		{"conflict", apierrors.NewConflict(pods, "web-n1", errors.New("changed")), false},
		{"nil", nil, false},
	} {
		if got := patchForbidden(tc.err); got != tc.want {
			t.Errorf("%s: patchForbidden = %v, want %v", tc.name, got, tc.want)
		}
	}
}
