package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mirrorlet/mirrorlet/test/images"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// Toleration seconds the API server's DefaultTolerationSeconds admission
// gives pods without their own, and the node monitor grace period of the
// node lifecycle controller: short, so that an unreachable node's pods are
// evicted within seconds rather than minutes.
const (
	defaultTolerationSeconds = 5
	nodeMonitorGracePeriod   = 15 * time.Second
)

// What the suite shares; set up once in TestMain.
var (
	env *envtest.Environment
	// admin sets up and observes; it never makes a request being proven.
	admin      client.Client
	registry   *images.Registry
	ctd        *nodetest.Containerd
	mirrorlet  string
	kubeAssets string
	workDir    string
	auditLog   string
	nodeSeq    atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	kubeAssets = os.Getenv("MIRRORLET_KUBE_ASSETS")
	if os.Getenv("KUBEBUILDER_ASSETS") == "" || kubeAssets == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS or MIRRORLET_KUBE_ASSETS is not set: run `make test-cluster`")
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the cluster suite runs containers and needs root: run `sudo make test-cluster`")
		return 1
	}
	var err error
	// Short: containerd's socket path lives under it.
	if workDir, err = os.MkdirTemp("/tmp", "ml-cl-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(workDir) }()
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](); err != nil {
				fmt.Fprintln(os.Stderr, "cluster teardown:", err)
			}
		}
	}()
	for _, s := range setupSteps() {
		start := time.Now()
		stop, err := s.run(context.Background())
		if stop != nil {
			stops = append(stops, stop)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cluster setup: %s: %v\n", s.what, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "cluster setup: %s (%s)\n", s.what, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

type setupStep struct {
	what string
	run  func(context.Context) (stop func() error, err error)
}

func setupSteps() []setupStep {
	return []setupStep{
		{"start kube-apiserver and etcd, apply deploy/rbac and deploy/admission", startAPIServer},
		{"build the test images and serve them from a local registry", startRegistry},
		{"build mirrorlet", func(context.Context) (func() error, error) {
			var err error
			mirrorlet, err = nodetest.BuildMirrorlet(workDir)
			return nil, err
		}},
		{"start mirrorlet's private containerd", func(ctx context.Context) (func() error, error) {
			var err error
			ctd, err = nodetest.StartContainerd(ctx, filepath.Join(workDir, "ctd"), registry.Host)
			if err != nil {
				return nil, err
			}
			return ctd.Stop, nil
		}},
		{"start kube-controller-manager", startControllerManager},
	}
}

func startAPIServer(ctx context.Context) (func() error, error) {
	auditLog = filepath.Join(workDir, "audit.log")
	policy := filepath.Join(workDir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, err
	}
	env = &envtest.Environment{}
	env.ControlPlane.GetAPIServer().Configure().
		Set("authorization-mode", "Node,RBAC").
		Append("enable-admission-plugins", "NodeRestriction").
		Set("default-not-ready-toleration-seconds", fmt.Sprint(defaultTolerationSeconds)).
		Set("default-unreachable-toleration-seconds", fmt.Sprint(defaultTolerationSeconds)).
		Set("audit-policy-file", policy).
		Set("audit-log-path", auditLog)
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	if admin, err = client.New(cfg, client.Options{}); err != nil {
		return env.Stop, err
	}
	return env.Stop, nodetest.ApplyFiles(ctx, admin, "deploy/rbac/mirrorlet.yaml",
		"deploy/admission/node-scoping.yaml", "deploy/admission/read-only-mirrors.yaml")
}

// auditPolicy records who writes pods, nodes and Leases: how a test tells
// the garbage collector's deletes from anyone else's, and proves that
// neither a kubelet nor mirrorlet writes the other's pods, and that a
// mirrorlet refused a kubelet's node name writes nothing.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
  resources:
  - group: ""
    resources: [pods, pods/status, nodes, nodes/status]
  - group: coordination.k8s.io
    resources: [leases]
- level: None
`

func startRegistry(ctx context.Context) (func() error, error) {
	var err error
	if registry, err = images.Serve("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return registry.Close, images.BuildAndPush(ctx, registry, workDir)
}

// userKubeconfig writes a kubeconfig with a client certificate for user
// name in groups, and returns its path.
func userKubeconfig(name string, groups ...string) (string, error) {
	u, err := env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kubeconfig of %s: %w", name, err)
	}
	path := filepath.Join(workDir, strings.NewReplacer(":", "_", "/", "_").Replace(name)+".kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// startNode runs mirrorlet as node name (unique per call when empty), as
// its own identity mirrorlet:node:<name>, on the suite's containerd (the
// fake runtime when fake). Its Node is deleted when the test ends, so that
// NotReady nodes of finished tests never count in the node lifecycle
// controller's view of the zone.
func startNode(t *testing.T, name string, fake bool, flags ...string) *nodetest.Mirrorlet {
	t.Helper()
	if name == "" {
		name = fmt.Sprintf("cl-%d", nodeSeq.Add(1))
	}
	kc, err := userKubeconfig("mirrorlet:node:"+name, "mirrorlet:nodes")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNode(name) })
	cfg := nodetest.MirrorletConfig{Binary: mirrorlet, Kubeconfig: kc, NodeName: name, Containerd: ctd, Flags: flags}
	if fake {
		cfg.Containerd = nil
	}
	return nodetest.StartMirrorlet(t, cfg)
}

func deleteNode(name string) {
	err := admin.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "deleting node %s: %v\n", name, err)
	}
}
