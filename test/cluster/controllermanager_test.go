package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// kcmUser is the controller manager's identity, as on kubeadm clusters.
const kcmUser = "system:kube-controller-manager"

// kcmControllers are the controllers that act on mirrors and their Node:
// the garbage collector (ownerReferences), the node lifecycle controller
// (NotReady, taints), taint-based eviction and pod GC (pods of nodes that
// are gone).
var kcmControllers = []string{
	"garbage-collector-controller", "node-lifecycle-controller",
	"taint-eviction-controller", "pod-garbage-collector-controller",
}

// kcm is the suite's kube-controller-manager.
var kcm *nodetest.Process

// startControllerManager runs kube-controller-manager as kcmUser with only
// kcmControllers, each acting as kcmUser
// (--use-service-account-credentials=false), which is bound to the
// bootstrap roles of those controllers.
func startControllerManager(ctx context.Context) (func() error, error) {
	if err := bindControllerRoles(ctx); err != nil {
		return nil, err
	}
	kc, err := userKubeconfig(kcmUser)
	if err != nil {
		return nil, err
	}
	kcm, err = nodetest.StartProcess("kube-controller-manager", filepath.Join(workDir, "kcm.log"),
		filepath.Join(kubeAssets, "kube-controller-manager"),
		"--kubeconfig", kc, "--controllers", strings.Join(kcmControllers, ","),
		"--use-service-account-credentials=false", "--leader-elect=false", "--secure-port=0",
		"--node-monitor-period=1s", "--node-monitor-grace-period", nodeMonitorGracePeriod.String(),
		"--v=2")
	if err != nil {
		return nil, err
	}
	stop := func() error { return kcm.Stop(syscall.SIGTERM) }
	// The garbage collector acts once its graph has synced.
	if err := kcm.WaitLog(ctx, time.Minute, "all resource monitors have synced"); err != nil {
		return stop, fmt.Errorf("%w\n%s", err, kcm.Tail(40))
	}
	return stop, nil
}

// bindControllerRoles binds kcmUser to the bootstrap ClusterRoles of
// kcmControllers (what each controller's service account has with
// --use-service-account-credentials).
func bindControllerRoles(ctx context.Context) error {
	for _, role := range []string{
		"system:controller:generic-garbage-collector", "system:controller:node-controller",
		"system:controller:taint-eviction-controller", "system:controller:pod-garbage-collector",
	} {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "test-kcm-" + strings.TrimPrefix(role, "system:controller:")},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: kcmUser}},
		}
		if err := admin.Create(ctx, crb); err != nil {
			return fmt.Errorf("binding %s to %s: %w", role, kcmUser, err)
		}
	}
	return nil
}
