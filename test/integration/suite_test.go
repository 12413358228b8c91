package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

const timeout = 30 * time.Second

// interval is the polling period of eventually; benchmarks lower it so that
// polling does not dominate what they measure.
var interval = 50 * time.Millisecond

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

// agent is one mirrorlet run by a test, with its own node name, manifest
// directory and fake runtime.
type agent struct {
	t       testing.TB
	node    string
	dir     string
	rt      *fake.Runtime
	cancel  context.CancelFunc
	done    chan error
	healthz string
}

type agentOption func(*app.Options)

// newNodeName returns a node name no other test uses.
func newNodeName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, nodeCount.Add(1))
}

// startAgent runs mirrorlet for node with a manifest directory (created if
// dir is empty) and the fake runtime rt (a new one if nil). It stops when the
// test ends.
func startAgent(t testing.TB, node, dir string, rt *fake.Runtime, opts ...agentOption) *agent {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if rt == nil {
		rt = fake.New(nil)
	}
	a := &agent{t: t, node: node, dir: dir, rt: rt, done: make(chan error, 1)}
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mirrorlet log for %s:\n%s", node, logs.String())
		}
	})
	o := app.Options{
		RestConfig: cfg, NodeName: node, PodManifestPath: dir, FileCheckFrequency: 2 * time.Second,
		Runtime: rt, HealthzBindAddress: "0", MetricsBindAddress: "0", ResyncPeriod: time.Second,
		Log: zap.New(zap.UseDevMode(true), zap.WriteTo(logs)).WithValues("node", node),
	}
	for _, opt := range opts {
		opt(&o)
	}
	a.healthz = o.HealthzBindAddress
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

// write writes a manifest file atomically (write then rename).
func (a *agent) write(name, content string) {
	a.t.Helper()
	tmp := filepath.Join(a.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(a.dir, name)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) remove(name string) {
	a.t.Helper()
	if err := os.Remove(filepath.Join(a.dir, name)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agent) key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "default", Name: name + "-" + a.node}
}

// waitMirror waits until the mirror of name exists and cond holds for it.
func (a *agent) waitMirror(name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	a.t.Helper()
	var got *corev1.Pod
	eventually(a.t, fmt.Sprintf("mirror %s", a.key(name)), func() bool {
		pod := &corev1.Pod{}
		if err := k8s.Get(context.Background(), a.key(name), pod); err != nil {
			return false
		}
		got = pod
		return cond == nil || cond(pod)
	})
	return got
}

// waitNoMirror waits until the mirror of name is gone.
func (a *agent) waitNoMirror(name string) {
	a.t.Helper()
	eventually(a.t, fmt.Sprintf("mirror %s gone", a.key(name)), func() bool {
		err := k8s.Get(context.Background(), a.key(name), &corev1.Pod{})
		return apierrors.IsNotFound(err)
	})
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

// waitRunning waits until every container of the runtime pod of name runs
// and returns the pod.
func (a *agent) waitRunning(name string, containers int) mruntime.Pod {
	a.t.Helper()
	var got mruntime.Pod
	eventually(a.t, fmt.Sprintf("runtime pod %s running", name), func() bool {
		p, ok := a.runtimePod(name)
		if !ok {
			return false
		}
		running := 0
		for _, c := range p.Containers {
			if c.State == mruntime.ContainerRunning {
				running++
			}
		}
		got = p
		return running == containers
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

// consistently checks that cond holds for the whole of d.
func consistently(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), interval, d, true,
		func(context.Context) (bool, error) { return !cond(), nil })
	if err == nil {
		t.Fatalf("%s stopped holding", what)
	}
}

// logBuffer keeps an agent's log, shown only when the test fails.
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

// podManifest returns a one-container Pod manifest.
func podManifest(name string, labels map[string]string, image string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n", name)
	if len(labels) > 0 {
		b.WriteString("  labels:\n")
		for k, v := range labels {
			fmt.Fprintf(&b, "    %s: %q\n", k, v)
		}
	}
	fmt.Fprintf(&b, "spec:\n  containers:\n  - name: web\n    image: %s\n    ports:\n    - containerPort: 80\n", image)
	return b.String()
}
