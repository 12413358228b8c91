package security

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/manifest"
)

// TestEditorCannotEditMirrors: a namespace editor (ClusterRole edit) is
// refused label, annotation, owner, finalizer and spec edits of a mirror
// with a message naming the node and the manifest; no-op writes and
// deletes are allowed, and a deleted mirror comes back without restarting
// the pod.
func TestEditorCannotEditMirrors(t *testing.T) {
	ctx := t.Context()
	a := startAgent(t, newNodeName("ro"))
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	editor := mustUserClient(t, editorName)
	readOnly := []string{
		"pod default/" + m.Name + " is a mirror of a static pod on node " + a.Node + " and is read-only",
		"its manifest on node " + a.Node + " is the place to change it",
	}
	for _, tc := range []struct{ name, patch, changed string }{
		{"label", `{"metadata":{"labels":{"role":"b"}}}`, "labels"},
		{"new label", `{"metadata":{"labels":{"team":"x"}}}`, "labels"},
		{"annotation", `{"metadata":{"annotations":{"note":"x"}}}`, "annotations"},
		{"owner references", `{"metadata":{"ownerReferences":null}}`, "ownerReferences"},
		{"finalizer", `{"metadata":{"finalizers":["example.com/keep"]}}`, "finalizers"},
		{"image", `{"spec":{"containers":[{"name":"web","image":"nginx:9.99","ports":[{"containerPort":80}]}]}}`, "spec"},
		{"activeDeadlineSeconds", `{"spec":{"activeDeadlineSeconds":5}}`, "spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, tc.name, patch(ctx, editor, m, tc.patch), append(readOnly, "refused: change of "+tc.changed+")")...)
		})
	}
	t.Run("update", func(t *testing.T) {
		// The latest version each try: a status write may follow
		// Running, and the API server checks the resourceVersion
		// (Conflict) before admission.
		var err error
		for range 5 {
			edited := a.WaitMirror("web", nil)
			edited.Labels["role"] = "b"
			if err = editor.Update(ctx, edited); !apierrors.IsConflict(err) {
				break
			}
		}
		refused(t, "update", err, append(readOnly, "refused: change of labels)")...)
	})
	// A user who may also write pods/status. (Ephemeral containers need
	// no policy: the API server refuses them on mirror pods.)
	debugger := subresourceWriter(t)
	t.Run("label through pods/status", func(t *testing.T) {
		err := debugger.Status().Patch(ctx, m.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"role":"b"}}}`)))
		refused(t, "label through pods/status", err, append(readOnly, "refused: change of labels)")...)
	})
	t.Run("status write allowed", func(t *testing.T) {
		err := debugger.Status().Patch(ctx, m.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"message":"edited"}}`)))
		if err != nil {
			t.Fatalf("status write: %v", err)
		}
		a.WaitMirror("web", func(p *corev1.Pod) bool { return p.Status.Message == "" && isRunning(p) })
	})
	t.Run("no-op patch allowed", func(t *testing.T) {
		if err := patch(ctx, editor, m, `{"metadata":{"labels":{"role":"a"}}}`); err != nil {
			t.Errorf("a patch that changes nothing: %v", err)
		}
	})
	got := a.WaitMirror("web", nil)
	if got.UID != m.UID || got.Labels["role"] != "a" || got.Spec.Containers[0].Image != "nginx:1.27" || len(got.Finalizers) > 0 {
		t.Errorf("mirror changed: uid %s labels %v image %s finalizers %v", got.UID, got.Labels, got.Spec.Containers[0].Image, got.Finalizers)
	}

	uid := types.UID(m.Annotations[manifest.AnnotationMirror])
	starts := a.RT.Starts(uid)
	if err := editor.Delete(ctx, m); err != nil {
		t.Fatalf("editor deleting the mirror: %v", err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID != m.UID && isRunning(p) })
	if n := a.RT.Starts(uid); n != starts {
		t.Errorf("containers started %d times, want %d: deleting a mirror must not restart the pod", n, starts)
	}
}

// TestDriftRevertedWithoutPolicies: with deploy/admission absent, the
// editor's edits go through and mirrorlet puts back what its manifest
// sets; an annotation the manifest does not set is the editor's, and stays
// (server-side apply).
func TestDriftRevertedWithoutPolicies(t *testing.T) {
	withoutPolicies(t)
	ctx := t.Context()
	a := startAgent(t, newNodeName("drift"))
	a.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	editor := mustUserClient(t, editorName)

	if err := patch(ctx, editor, m, `{"metadata":{"labels":{"role":"b"},"annotations":{"note":"x"}}}`); err != nil {
		t.Fatalf("editor's label edit without the policy: %v", err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.UID == m.UID && p.Labels["role"] == "a" && p.Annotations["note"] == "x"
	})
	if err := patch(ctx, editor, m, `{"spec":{"containers":[{"name":"web","image":"nginx:9.99","ports":[{"containerPort":80}]}]}}`); err != nil {
		t.Fatalf("editor's image edit without the policy: %v", err)
	}
	a.WaitMirror("web", func(p *corev1.Pod) bool {
		return p.UID != m.UID && p.Spec.Containers[0].Image == "nginx:1.27" && isRunning(p)
	})
}

// TestMisnamedAgentRefused: a member of group mirrorlet:nodes not named
// mirrorlet:node:<node> (so its node cannot be known) may write nothing the
// node policy covers.
func TestMisnamedAgentRefused(t *testing.T) {
	c := mustUserClient(t, "mirrorlet:legacy", "mirrorlet:nodes")
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}}
	refused(t, "create Node", c.Create(t.Context(), n),
		"user mirrorlet:legacy is in group mirrorlet:nodes but is not named mirrorlet:node:<node-name>")
	refused(t, "create mirror", c.Create(t.Context(), mirrorPod("web", "default", "legacy")),
		"is not named mirrorlet:node:<node-name>")
}

// subresourceWriter returns the client of a user who may update and patch
// pods/status in namespace default (the edit ClusterRole does not).
func subresourceWriter(t *testing.T) client.Client {
	t.Helper()
	name := "debugger-" + newNodeName("user")
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/status"},
			Verbs: []string{"update", "patch"}}},
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: name}},
	}
	for _, o := range []client.Object{role, rb} {
		if err := admin.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
	return mustUserClient(t, name)
}
