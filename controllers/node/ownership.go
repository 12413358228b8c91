package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrKubeletNode is wrapped by the error CheckOwnership returns for a Node
// kept by a kubelet.
var ErrKubeletNode = fmt.Errorf("node is kept by a kubelet")

// CheckOwnership returns an error wrapping ErrKubeletNode when the Node
// named nodeName exists and a kubelet keeps it: its nodeInfo names a kubelet
// version, or a kubelet holds its Lease. A missing Node, or one mirrorlet
// registered, is fine.
func CheckOwnership(ctx context.Context, c client.Reader, nodeName string) error {
	node := &corev1.Node{}
	err := c.Get(ctx, types.NamespacedName{Name: nodeName}, node)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting node %s: %w", nodeName, err)
	}
	if node.Labels[LabelAgent] == AgentName {
		return nil
	}
	var why string
	if v := node.Status.NodeInfo.KubeletVersion; v != "" && !strings.HasPrefix(v, AgentName) {
		why = fmt.Sprintf("its status.nodeInfo.kubeletVersion is %q", v)
	}
	lease := &coordinationv1.Lease{}
	err = c.Get(ctx, types.NamespacedName{Namespace: LeaseNS, Name: nodeName}, lease)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("getting lease of node %s: %w", nodeName, err)
	case why == "" && kubeletHolds(lease, nodeName):
		why = fmt.Sprintf("its Lease %s/%s is held by %q", LeaseNS, nodeName, *lease.Spec.HolderIdentity)
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w: node %q: %s. A kubelet deletes mirror pods it did not create as orphans and "+
		"kills pod sandboxes it does not know; run mirrorlet under a node name of its own (--node-name) "+
		"with its own container runtime", ErrKubeletNode, nodeName, why)
}

func kubeletHolds(lease *coordinationv1.Lease, nodeName string) bool {
	h := lease.Spec.HolderIdentity
	if h == nil || *h == HolderIdentity(nodeName) {
		return false
	}
	if lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil {
		return *h != ""
	}
	expiry := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second * 3)
	return time.Now().Before(expiry)
}
