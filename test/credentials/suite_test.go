package credentials

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
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

// agent is one mirrorlet run in-process by a test with the fake runtime.
type agent struct {
	t      testing.TB
	node   string
	dir    string
	rt     *fake.Runtime
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
}

// startAgent runs mirrorlet for node as the identity of restCfg, with a
// fresh manifest directory. It stops when the test ends.
func startAgent(t testing.TB, node string, restCfg *rest.Config, opts ...func(*app.Options)) *agent {
	t.Helper()
	a := &agent{t: t, node: node, dir: t.TempDir(), rt: fake.New(nil), logs: &logBuffer{}, done: make(chan error, 1)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mirrorlet log for %s:\n%s", node, a.logs.String())
		}
	})
	o := app.Options{
		RestConfig: restCfg, NodeName: node, PodManifestPath: a.dir, FileCheckFrequency: 2 * time.Second,
		Runtime: a.rt, HealthzBindAddress: "0", MetricsBindAddress: "0", ResyncPeriod: time.Second,
		// t.TempDir is 0700 and owned by whoever runs the test: safe.
		Log: zap.New(zap.UseDevMode(true), zap.WriteTo(a.logs)).WithValues("node", node),
	}
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- app.Run(ctx, o) }()
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.done:
		if err != nil {
			a.t.Errorf("mirrorlet for %s stopped with: %v", a.node, err)
		}
	case <-time.After(timeout):
		a.t.Errorf("mirrorlet for %s did not stop within %s", a.node, timeout)
	}
}

// write writes a manifest file atomically (write then rename), mode 0600.
func (a *agent) write(name, content string) {
	a.t.Helper()
	tmp := a.dir + "/." + name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, a.dir+"/"+name); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "default", Name: name + "-" + a.node}
}

// waitMirror waits, reading as the admin, until the mirror of name exists
// and cond holds for it.
func (a *agent) waitMirror(name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	a.t.Helper()
	var got *corev1.Pod
	eventually(a.t, fmt.Sprintf("mirror %s", a.key(name)), func() bool {
		pod := &corev1.Pod{}
		if err := admin.Get(context.Background(), a.key(name), pod); err != nil {
			return false
		}
		got = pod
		return cond == nil || cond(pod)
	})
	return got
}

// runtimePod returns the runtime pod of name, if the fake runs one.
func (a *agent) runtimePod(name string) (mruntime.Pod, bool) {
	for _, p := range a.rt.Pods() {
		if p.Name == a.key(name).Name {
			return p, true
		}
	}
	return mruntime.Pod{}, false
}

// waitRunning waits until the one container of the runtime pod of name runs.
func (a *agent) waitRunning(name string) mruntime.Pod {
	a.t.Helper()
	var got mruntime.Pod
	eventually(a.t, fmt.Sprintf("runtime pod %s running", name), func() bool {
		p, ok := a.runtimePod(name)
		got = p
		return ok && len(p.Containers) == 1 && p.Containers[0].State == mruntime.ContainerRunning
	})
	return got
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), interval, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// logBuffer keeps an agent's log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns how many log lines contain s.
func (l *logBuffer) count(s string) int {
	return strings.Count(l.String(), s)
}

// podManifest returns a one-container Pod manifest with labels.
func podManifest(name string, labels map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n", name)
	if len(labels) > 0 {
		b.WriteString("  labels:\n")
		for k, v := range labels {
			fmt.Fprintf(&b, "    %s: %q\n", k, v)
		}
	}
	b.WriteString("spec:\n  containers:\n  - name: web\n    image: nginx:1.27\n")
	return b.String()
}
