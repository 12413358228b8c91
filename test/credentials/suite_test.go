package credentials

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/test/agenttest"
)

const (
	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
)

var (
	env       *envtest.Environment
	ca        *testCA
	admin     client.Client
	nodeCount atomic.Int32
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test` (it builds the envtest binaries with hack/build-envtest.sh)")
		return 1
	}
	var err error
	if ca, err = newTestCA(); err != nil {
		fmt.Fprintln(os.Stderr, "creating client CA:", err)
		return 1
	}
	env = &envtest.Environment{}
	env.ControlPlane.APIServer = &envtest.APIServer{SecureServing: envtest.SecureServing{Authn: &authn{ca: ca}}}
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Set("authorization-mode", "Node,RBAC")
	args.Append("enable-admission-plugins", "NodeRestriction")
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if admin, err = client.New(cfg, client.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "creating client:", err)
		return 1
	}
	return m.Run()
}

// userConfig returns a rest.Config that authenticates as user in groups
// with a client certificate of the suite's CA.
func userConfig(t testing.TB, user string, groups ...string) *rest.Config {
	t.Helper()
	u, err := env.ControlPlane.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", user, err)
	}
	return u.Config()
}

// newNodeName returns a node name no other test uses.
func newNodeName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nodeCount.Add(1))
}

// agent is one mirrorlet run in-process (see package agenttest).
type agent = agenttest.Agent

// startAgent runs mirrorlet for node as the identity of restCfg, with a
// fresh manifest directory; the test reads mirrors as the admin. It stops
// when the test ends.
func startAgent(t testing.TB, node string, restCfg *rest.Config, opts ...func(*app.Options)) *agent {
	t.Helper()
	return agenttest.Start(t, node, agenttest.Config{RestConfig: restCfg, Reader: admin, Options: opts})
}

var (
	eventually   = agenttest.Eventually
	consistently = agenttest.Consistently
)

// podManifest returns a one-container Pod manifest with labels.
func podManifest(name string, labels map[string]string) string {
	return agenttest.PodManifest(name, labels, "nginx:1.27")
}
