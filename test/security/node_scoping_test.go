package security

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// scope is one node's agent and the objects it wrote for itself.
type scope struct {
	node    string
	c       client.Client
	nodeUID types.UID
	mirror  *corev1.Pod
	lease   *coordinationv1.Lease
}

// newScope writes, as node's own agent, its Node, Lease and a mirror pod:
// what the policy must allow.
func newScope(t *testing.T, prefix string) *scope {
	t.Helper()
	ctx := t.Context()
	s := &scope{node: newNodeName(prefix)}
	s.c = agentClient(t, s.node)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.node}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{staticOnly}}}
	if err := s.c.Create(ctx, n); err != nil {
		t.Fatalf("agent %s creating its Node: %v", s.node, err)
	}
	s.nodeUID = n.UID
	mergePatchStatus(t, s.c, n, `{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Test","message":"x"}]}}`)
	s.mirror = s.ownMirror("web")
	if err := s.c.Create(ctx, s.mirror); err != nil {
		t.Fatalf("agent %s creating its mirror: %v", s.node, err)
	}
	mergePatch(t, s.c, s.mirror, `{"metadata":{"labels":{"role":"x"}}}`)
	mergePatchStatus(t, s.c, s.mirror, `{"status":{"phase":"Running"}}`)
	now := metav1.NewMicroTime(time.Now())
	s.lease = &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: s.node, Namespace: "kube-node-lease"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptrTo("mirrorlet/" + s.node), RenewTime: &now},
	}
	if err := s.c.Create(ctx, s.lease); err != nil {
		t.Fatalf("agent %s creating its Lease: %v", s.node, err)
	}
	if err := s.c.Update(ctx, s.lease); err != nil {
		t.Fatalf("agent %s renewing its Lease: %v", s.node, err)
	}
	if err := s.c.Create(ctx, event(s.node, "Node", "", s.node)); err != nil {
		t.Fatalf("agent %s writing an Event about its Node: %v", s.node, err)
	}
	if err := s.c.Create(ctx, event(s.node, "Pod", "default", s.mirror.Name)); err != nil {
		t.Fatalf("agent %s writing an Event about its mirror: %v", s.node, err)
	}
	return s
}

// staticOnly is the taint mirrorlet registers its Node with.
var staticOnly = corev1.Taint{Key: "node.mirrorlet.io/static-only", Value: "true", Effect: corev1.TaintEffectNoSchedule}

// ownMirror returns a mirror pod of the scope's node, owned by its Node.
func (s *scope) ownMirror(name string) *corev1.Pod {
	p := mirrorPod(name, "default", s.node)
	p.OwnerReferences[0].UID = s.nodeUID
	return p
}

func mergePatchStatus(t *testing.T, c client.Client, obj client.Object, patch string) {
	t.Helper()
	if err := c.Status().Patch(t.Context(), obj.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("patching status of %s with %s: %v", obj.GetName(), patch, err)
	}
}

// event returns an events.k8s.io Event as node's recorder writes it.
func event(node, kind, namespace, name string) *eventsv1.Event {
	ns := namespace
	if ns == "" {
		ns = "default"
	}
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{GenerateName: name + "-", Namespace: ns},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: "mirrorlet.io/mirrorlet", ReportingInstance: "mirrorlet-" + node,
		Action: "LoadManifest", Reason: "FailedLoadManifest", Type: corev1.EventTypeWarning, Note: "test",
		Regarding: corev1.ObjectReference{APIVersion: "v1", Kind: kind, Namespace: namespace, Name: name},
	}
}

// TestAgentRefusedOutsideItsNode checks that the agent for n1, whose own
// writes newScope shows are allowed, is refused everything of n2's and
// every pod that could reach a Secret, each with the policy's message.
func TestAgentRefusedOutsideItsNode(t *testing.T) {
	ctx := t.Context()
	n1, n2 := newScope(t, "n1"), newScope(t, "n2")
	boundToN2 := []string{"mirrorlet:node:" + n1.node + " may only write pods bound to node " + n1.node, "bound to node " + n2.node}
	plainOnN2 := mirrorPod("plain", "default", n2.node)
	plainOnN2.Annotations, plainOnN2.OwnerReferences = nil, nil
	plainOnN1 := n1.ownMirror("plain")
	plainOnN1.Annotations = nil
	ownedByN2 := n1.ownMirror("owned")
	ownedByN2.OwnerReferences[0].Name = n2.node
	withSecret := n1.ownMirror("secret")
	withSecret.Spec.Volumes = []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}}
	withSA := n1.ownMirror("sa")
	withSA.Spec.ServiceAccountName = "default"
	withEnv := n1.ownMirror("env")
	withEnv.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}
	plainPod := plainOnN2.DeepCopy()
	plainPod.Name = "plain-admin-" + n2.node
	if err := admin.Create(ctx, plainPod); err != nil {
		t.Fatal(err)
	}
	otherNode := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n2.node + "-other"}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{staticOnly}}}
	untainted := newNodeName("untainted")
	untaintedClient := agentClient(t, untainted)
	otherLease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n1.node, Namespace: "default"}}

	for _, tc := range []struct {
		name string
		do   func() error
		want []string
	}{
		{"create a mirror bound to n2", func() error { return n1.c.Create(ctx, mirrorPod("x", "default", n2.node)) }, boundToN2},
		{"create a plain pod bound to n2", func() error { return n1.c.Create(ctx, plainOnN2) }, boundToN2},
		{"create a plain pod bound to n1", func() error { return n1.c.Create(ctx, plainOnN1) },
			[]string{"may only write mirror pods (annotation kubernetes.io/config.mirror) of node " + n1.node}},
		{"create a mirror of n1 owned by Node n2", func() error { return n1.c.Create(ctx, ownedByN2) },
			[]string{"whose one owner reference is the controller reference to Node " + n1.node}},
		{"create a mirror on n1 under n2's mirror name", func() error {
			p := n1.ownMirror("taken")
			p.Name = "taken-" + n2.node
			return n1.c.Create(ctx, p)
		}, []string{"may only create mirror pods named <pod>-" + n1.node + ", not pod default/taken-" + n2.node}},
		{"create a mirror with a Secret volume", func() error { return n1.c.Create(ctx, withSecret) },
			[]string{"may not create pods with Secret, ConfigMap", "has: creds"}},
		{"create a mirror with a service account", func() error { return n1.c.Create(ctx, withSA) },
			[]string{"may not create pods that use a service account", `"default"`}},
		{"create a mirror with env from a ConfigMap", func() error { return n1.c.Create(ctx, withEnv) },
			[]string{"whose environment comes from Secrets or ConfigMaps", "containers: web"}},
		{"delete n2's mirror", func() error { return n1.c.Delete(ctx, n2.mirror.DeepCopy()) }, boundToN2},
		// Both policies refuse this one; either message may be the answer.
		{"patch n2's mirror", func() error { return patch(ctx, n1.c, n2.mirror, `{"metadata":{"labels":{"role":"y"}}}`) },
			[]string{"ValidatingAdmissionPolicy", n2.node}},
		{"patch a plain pod bound to n2", func() error { return patch(ctx, n1.c, plainPod, `{"metadata":{"labels":{"role":"y"}}}`) },
			boundToN2},
		{"delete a plain pod bound to n2", func() error { return n1.c.Delete(ctx, plainPod.DeepCopy()) }, boundToN2},
		{"patch n2's mirror status", func() error {
			return n1.c.Status().Patch(ctx, n2.mirror.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"phase":"Failed"}}`)))
		}, boundToN2},
		{"create another Node", func() error { return n1.c.Create(ctx, otherNode) },
			[]string{"may only write its own Node " + n1.node + ", not Node " + otherNode.Name}},
		{"register its Node without the static-only taint", func() error {
			return untaintedClient.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: untainted}})
		}, []string{"may only register Node " + untainted + " with the taint node.mirrorlet.io/static-only:NoSchedule"}},
		{"patch Node n2's status", func() error {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n2.node}}
			return n1.c.Status().Patch(ctx, n, client.RawPatch(types.MergePatchType, []byte(`{"status":{"conditions":[{"type":"Ready","status":"False","reason":"X","message":"x"}]}}`)))
		}, []string{"may only write its own Node " + n1.node + ", not Node " + n2.node}},
		{"renew Lease n2", func() error { return n1.c.Update(ctx, n2.lease.DeepCopy()) },
			[]string{"may only write its own node Lease kube-node-lease/" + n1.node + ", not Lease kube-node-lease/" + n2.node}},
		{"create its Lease in another namespace", func() error { return n1.c.Create(ctx, otherLease) },
			[]string{"may only write its own node Lease kube-node-lease/" + n1.node + ", not Lease default/" + n1.node}},
		{"write an Event about Node n2", func() error { return n1.c.Create(ctx, event(n1.node, "Node", "", n2.node)) },
			[]string{"may only write Events about Node " + n1.node, "is about Node /" + n2.node}},
		{"write an Event about n2's mirror", func() error { return n1.c.Create(ctx, event(n1.node, "Pod", "default", n2.mirror.Name)) },
			[]string{"may only write Events about Node " + n1.node, "is about Pod default/" + n2.mirror.Name}},
	} {
		t.Run(tc.name, func(t *testing.T) { refused(t, tc.name, tc.do(), tc.want...) })
	}
	// n2's objects are untouched.
	got := &corev1.Pod{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(n2.mirror), got); err != nil || got.Labels["role"] != "x" || got.Status.Phase != corev1.PodRunning {
		t.Errorf("n2's mirror changed: %v %+v %s", err, got.Labels, got.Status.Phase)
	}
}

func patch(ctx context.Context, c client.Client, obj client.Object, p string) error {
	return c.Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType, []byte(p)))
}

// TestAgentDeleteCollectionChecksEachPod: RBAC gives agents no
// deletecollection; granted anyway, the policy still checks every pod the
// collection delete would remove (the API server admits each with its old
// object) and keeps n2's mirror.
func TestAgentDeleteCollectionChecksEachPod(t *testing.T) {
	ctx := t.Context()
	n1, n2 := newScope(t, "dc1"), newScope(t, "dc2")
	sel := client.MatchingLabels{"role": "x"}
	refused(t, "deletecollection under the shipped RBAC", n1.c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace("default"), sel),
		`cannot deletecollection resource "pods"`)

	grant(t, "mirrorlet:node:"+n1.node, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"deletecollection"}})
	var err error
	eventually(t, "deletecollection granted", func() bool {
		err = n1.c.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace("default"), client.MatchingLabels{"role": "x"},
			client.MatchingFields{"metadata.name": n2.mirror.Name})
		return err == nil || !strings.Contains(err.Error(), "cannot deletecollection")
	})
	refused(t, "deletecollection over n2's mirror", err, "may only write pods bound to node "+n1.node, "bound to node "+n2.node)
	if err := admin.Get(ctx, client.ObjectKeyFromObject(n2.mirror), &corev1.Pod{}); err != nil {
		t.Errorf("n2's mirror: %v, want it kept", err)
	}
}

// TestAgentCoreEventsScoped: agents write events.k8s.io Events, and RBAC
// gives them no core v1 Events; granted anyway, the policy checks a core
// Event's involvedObject as it checks regarding.
func TestAgentCoreEventsScoped(t *testing.T) {
	ctx := t.Context()
	n1 := newNodeName("ev1")
	c := agentClient(t, n1)
	grant(t, "mirrorlet:node:"+n1, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}})
	coreEvent := func(kind, name string) *corev1.Event {
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{GenerateName: name + "-", Namespace: "default"},
			InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: kind, Name: name},
			Reason:         "FailedLoadManifest", Message: "test", Type: corev1.EventTypeWarning,
			Source: corev1.EventSource{Component: "mirrorlet", Host: n1},
		}
	}
	eventually(t, "core events granted", func() bool {
		err := c.Create(ctx, coreEvent("Node", n1))
		return err == nil
	})
	refused(t, "core Event about another Node", c.Create(ctx, coreEvent("Node", "other-node")),
		"may only write Events about Node "+n1, "is about Node /other-node")
}

// grant binds a Role with rule in namespace default to user, for the test.
func grant(t *testing.T, user string, rule rbacv1.PolicyRule) {
	t.Helper()
	name := "grant-" + strings.ReplaceAll(user, ":", "-")
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Rules: []rbacv1.PolicyRule{rule}}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	for _, o := range []client.Object{role, rb} {
		if err := admin.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Delete(context.Background(), o) })
	}
}
