package security

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const (
	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
	// editorName is a user bound to the ClusterRole edit in namespace
	// default: what a namespace's developer usually has.
	editorName = "jane-editor"
	// probeNode is the node of the probe mirror and of the probe agent that
	// check whether the policies are in effect.
	probeNode = "policy-probe"
)

var (
	env *envtest.Environment
	// admin sets up and observes; it never makes a request being proven.
	admin     client.Client
	nodeCount atomic.Int32
	// users caches one client certificate per user name.
	users sync.Map
)

// rbacFiles and admissionFiles are the shipped deploy/ files, applied as
// they are.
var (
	rbacFiles      = []string{"deploy/rbac/mirrorlet.yaml"}
	admissionFiles = []string{"deploy/admission/node-scoping.yaml", "deploy/admission/read-only-mirrors.yaml"}
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test` (it builds the envtest binaries with hack/build-envtest.sh)")
		return 1
	}
	env = &envtest.Environment{}
	env.ControlPlane.GetAPIServer().Configure().
		Set("authorization-mode", "Node,RBAC").
		Append("enable-admission-plugins", "NodeRestriction")
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if err := setup(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "setting up the suite:", err)
		return 1
	}
	return m.Run()
}

// setup applies deploy/'s RBAC and policies, binds the editor, creates the
// probe mirror and waits until the policies refuse what they must.
func setup(cfg *rest.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	var err error
	if admin, err = client.New(cfg, client.Options{}); err != nil {
		return fmt.Errorf("creating admin client: %w", err)
	}
	if err := applyFiles(ctx, append(rbacFiles, admissionFiles...)...); err != nil {
		return err
	}
	if err := bindEditor(ctx); err != nil {
		return err
	}
	probe := mirrorPod("probe", "default", probeNode)
	if err := admin.Create(ctx, probe); err != nil {
		return fmt.Errorf("creating the probe mirror: %w", err)
	}
	return waitPolicies(ctx, true)
}

// bindEditor gives editorName the ClusterRole edit in namespace default.
// envtest runs no controller manager, so edit's aggregated rules are
// bound directly: system:aggregate-to-edit and -view are what edit
// aggregates.
func bindEditor(ctx context.Context) error {
	for _, role := range []string{"system:aggregate-to-edit", "system:aggregate-to-view"} {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "editor-" + strings.TrimPrefix(role, "system:"), Namespace: "default"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: editorName}},
		}
		if err := admin.Create(ctx, rb); err != nil {
			return fmt.Errorf("binding %s to %s: %w", role, editorName, err)
		}
	}
	return nil
}

// repoPath returns a path in the repository from this package's folder.
func repoPath(rel string) string { return filepath.Join("..", "..", filepath.FromSlash(rel)) }

// readObjects decodes every object of the YAML files.
func readObjects(files ...string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(repoPath(f))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f, err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			err := dec.Decode(&u.Object)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("decoding %s: %w", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	return objs, nil
}

// applyFiles creates the objects of the files as the admin.
func applyFiles(ctx context.Context, files ...string) error {
	objs, err := readObjects(files...)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := admin.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// deleteFiles deletes the objects of the files as the admin.
func deleteFiles(ctx context.Context, files ...string) error {
	objs, err := readObjects(files...)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := admin.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// withoutPolicies removes deploy/admission's policies for the rest of the
// test, and puts them back (waiting until they refuse again) when it ends.
func withoutPolicies(t *testing.T) {
	t.Helper()
	if err := deleteFiles(t.Context(), admissionFiles...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := applyFiles(ctx, admissionFiles...); err != nil {
			t.Error(err)
			return
		}
		if err := waitPolicies(ctx, true); err != nil {
			t.Error(err)
		}
	})
	if err := waitPolicies(t.Context(), false); err != nil {
		t.Fatal(err)
	}
}

// waitPolicies waits until both policies refuse (active) or allow (not
// active) a known-bad dry-run request: the probe agent creating a pod on
// another node, and the editor labelling the probe mirror.
func waitPolicies(ctx context.Context, active bool) error {
	agent, err := userClient("mirrorlet:node:"+probeNode, "mirrorlet:nodes")
	if err != nil {
		return err
	}
	editor, err := userClient(editorName)
	if err != nil {
		return err
	}
	probes := map[string]func() error{
		"node scoping": func() error {
			return agent.Create(ctx, mirrorPod("probe-elsewhere", "default", "elsewhere"), client.DryRunAll)
		},
		"read-only mirrors": func() error {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe-" + probeNode, Namespace: "default"}}
			patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"probe":"x"}}}`))
			return editor.Patch(ctx, p, patch, client.DryRunAll)
		},
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(context.Context) (bool, error) {
		for name, probe := range probes {
			err := probe()
			refused := apierrors.IsForbidden(err) && strings.Contains(err.Error(), "ValidatingAdmissionPolicy")
			if refused != active {
				last = fmt.Errorf("%s policy: active=%v, want %v (request error: %w)", name, refused, active, err)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the policies (active=%v): %w; last: %w", active, err, last)
	}
	return nil
}

// userConfig returns a rest.Config authenticating as name in groups with a
// client certificate the envtest API server trusts.
func userConfig(name string, groups ...string) (*rest.Config, error) {
	key := name + "|" + strings.Join(groups, ",")
	if cfg, ok := users.Load(key); ok {
		return rest.CopyConfig(cfg.(*rest.Config)), nil
	}
	u, err := env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding user %s: %w", name, err)
	}
	cfg := u.Config()
	users.Store(key, cfg)
	return rest.CopyConfig(cfg), nil
}

func userClient(name string, groups ...string) (client.Client, error) {
	cfg, err := userConfig(name, groups...)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{})
}

// mustUserClient is userClient for tests.
func mustUserClient(t testing.TB, name string, groups ...string) client.Client {
	t.Helper()
	c, err := userClient(name, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// agentClient is the client of node's agent: mirrorlet:node:<node> in
// group mirrorlet:nodes.
func agentClient(t testing.TB, node string) client.Client {
	return mustUserClient(t, "mirrorlet:node:"+node, "mirrorlet:nodes")
}

// newNodeName returns a node name no other test uses.
func newNodeName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nodeCount.Add(1))
}

// mirrorPod returns a mirror pod as mirrorlet builds it for node: the
// mirror annotation and the Node as its one controller owner.
func mirrorPod(name, namespace, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + node, Namespace: namespace,
			Annotations: map[string]string{"kubernetes.io/config.mirror": "0123abcd", "kubernetes.io/config.source": "file"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node, UID: "00000000-0000-0000-0000-000000000001", Controller: ptrTo(true),
			}},
		},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), interval, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// refused checks that err is a Forbidden answer whose message contains
// every want.
func refused(t testing.TB, what string, err error, want ...string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: got %v, want Forbidden", what, err)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: message %q lacks %q", what, err.Error(), w)
		}
	}
}
