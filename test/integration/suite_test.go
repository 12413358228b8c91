package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
	"github.com/mirrorlet/mirrorlet/test/agenttest"
)

const timeout = agenttest.Timeout

var (
	cfg       *rest.Config
	k8s       client.Client
	nodeCount atomic.Int32
	// kubeconfig is an admin kubeconfig file for the envtest API server.
	kubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test` (it builds the envtest binaries with hack/build-envtest.sh)")
		return 1
	}
	env := &envtest.Environment{}
	var err error
	if cfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = client.New(cfg, client.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "creating client:", err)
		return 1
	}
	if kubeconfig, err = writeKubeconfig(env); err != nil {
		fmt.Fprintln(os.Stderr, "writing kubeconfig:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(filepath.Dir(kubeconfig)) }()
	return m.Run()
}

func writeKubeconfig(env *envtest.Environment) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "mirrorlet-it-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// agent is one mirrorlet run by a test (see package agenttest).
type agent = agenttest.Agent

type agentOption = func(*app.Options)

// newNodeName returns a node name no other test uses.
func newNodeName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nodeCount.Add(1))
}

// startAgent runs mirrorlet for node as the admin, with a manifest
// directory (a new one if dir is empty) and the fake runtime rt (a new one
// if nil). It stops when the test ends.
func startAgent(t testing.TB, node, dir string, rt *fake.Runtime, opts ...agentOption) *agent {
	t.Helper()
	return agenttest.Start(t, node, agenttest.Config{RestConfig: cfg, Reader: k8s, Dir: dir, Runtime: rt, Options: opts})
}

var (
	eventually   = agenttest.Eventually
	consistently = agenttest.Consistently
	podManifest  = agenttest.PodManifest
	isRunning    = agenttest.IsRunning
)
