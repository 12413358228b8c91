package mirror

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// patchForbidden reports whether err says that this identity may not patch
// pods at all, as under the kubelet's own rules: the Node authorizer grants
// nodes only create and delete of pods, and NodeRestriction admits only
// those. Other Forbidden answers (an admission policy refusing one label,
// say) are not: a recreate would be refused the same way, and the mirror
// would be gone instead of stale.
func patchForbidden(err error) bool {
	if !apierrors.IsForbidden(err) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, `cannot patch resource "pods"`) ||
		strings.Contains(msg, "can only create and delete mirror pods")
}

// recreateOnly reports whether metadata changes are made by delete + create
// because the API server refused a metadata patch before.
func (r *Reconciler) recreateOnly() bool { return r.recreate.Load() }

// enterRecreateMode remembers that mirrors cannot be patched, and says so
// once.
func (r *Reconciler) enterRecreateMode(ctx context.Context, mirror *corev1.Pod, err error) {
	if r.recreate.CompareAndSwap(false, true) {
		log.FromContext(ctx).Info("The API server refuses to patch mirror pods (a node identity under NodeRestriction?); "+
			"label and annotation changes now delete and create the mirror, the static pod keeps running",
			"pod", client.ObjectKeyFromObject(mirror), "answer", err.Error())
	}
}

// recreateForMetadata replaces mirror by want (delete with a UID
// precondition, then create): the way to change labels and annotations
// when patches are refused. Nothing on the node is touched.
func (r *Reconciler) recreateForMetadata(ctx context.Context, mirror, want *corev1.Pod) (*corev1.Pod, error) {
	log.FromContext(ctx).Info("Recreating mirror pod to change its metadata", "pod", client.ObjectKeyFromObject(mirror))
	if err := r.delete(ctx, mirror); err != nil {
		return nil, err
	}
	created, err := r.createOnly(ctx, want)
	if err == nil && created == nil {
		// The delete did not take yet (NodeRestriction checks deletes
		// against its own, possibly late, cache): try again.
		return nil, fmt.Errorf("recreating mirror pod %s: the old mirror is still there, retrying", client.ObjectKeyFromObject(want))
	}
	return created, err
}
