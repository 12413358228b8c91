package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestKubeletRulesLabelEditKeepsContainer runs the mirrorlet binary with
// an identity that has the kubelet's rights on pods (create and delete, no
// patch; test/credentials proves the real system:node identity under the
// Node authorizer and NodeRestriction): a label edit reaches the mirror by
// delete + create, and the real container is never restarted.
func TestKubeletRulesLabelEditKeepsContainer(t *testing.T) {
	name := fmt.Sprintf("e2e-%d", nodeSeq.Add(1))
	n := startNodeAs(t, name, nodeRulesKubeconfig(t, name))
	port := freePort(t)
	pod := webPod("web", port)
	n.writeManifest("web.yaml", pod)
	first := n.waitRunning("web", 2*time.Minute)
	id := first.Status.ContainerStatuses[0].ContainerID
	before := answer(t, port, "/")

	pod.Labels["tier"] = "web"
	n.writeManifest("web.yaml", pod)
	var m *corev1.Pod
	eventually(t, 30*time.Second, "the new label on a new mirror, Running", func() bool {
		m = n.mirror("web")
		return m != nil && m.Labels["tier"] == "web" && m.UID != first.UID && m.Status.Phase == corev1.PodRunning &&
			len(m.Status.ContainerStatuses) == 1
	})
	after, err := get(port, "/")
	cs := m.Status.ContainerStatuses[0]
	if err != nil || after != before || cs.ContainerID != id || cs.RestartCount != 0 {
		t.Errorf("container changed on a label edit: %q -> %q (%v), %s -> %s, restarts %d",
			before, after, err, id, cs.ContainerID, cs.RestartCount)
	}
}

// nodeRulesKubeconfig returns a kubeconfig (0600) for a service account
// bound to the kubelet's rules on what mirrorlet touches: pods may be
// read, created and deleted, never patched.
func nodeRulesKubeconfig(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-kubelet-rules"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/status", "nodes/status"}, Verbs: []string{"patch", "update"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "create", "patch", "update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update", "patch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-kubelet-rules-" + name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: name}},
	}
	for _, obj := range []client.Object{sa, role, binding} {
		if err := k8s.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}
	if err := k8s.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("requesting a token for %s: %v", name, err)
	}
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	user := cfg.Contexts[cfg.CurrentContext].AuthInfo
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
