package agenttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// Timeout bounds every wait.
const Timeout = 30 * time.Second

// Interval is the polling period of every wait; benchmarks lower it so
// that polling does not dominate what they measure.
var Interval = 50 * time.Millisecond

// Config says how to run an Agent.
type Config struct {
	// RestConfig is the agent's identity. Required.
	RestConfig *rest.Config
	// Reader reads mirrors for the waits (an admin's client). Required.
	Reader client.Reader
	// Dir is the manifest directory; a new temporary one when empty.
	Dir string
	// Runtime is the fake runtime; a new one when nil.
	Runtime *fake.Runtime
	// Options change mirrorlet's options before it starts.
	Options []func(*app.Options)
}

// Agent is one mirrorlet run by a test.
type Agent struct {
	T    testing.TB
	Node string
	// Dir is the manifest directory.
	Dir string
	RT  *fake.Runtime
	// Logs holds mirrorlet's log, printed when the test fails.
	Logs *LogBuffer
	// Options are the options mirrorlet runs with.
	Options app.Options

	reader client.Reader
	cancel context.CancelFunc
	done   chan error
}

// Start runs mirrorlet for node until the test ends (or Stop).
func Start(t testing.TB, node string, c Config) *Agent {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	if c.Runtime == nil {
		c.Runtime = fake.New(nil)
	}
	a := &Agent{T: t, Node: node, Dir: c.Dir, RT: c.Runtime, Logs: &LogBuffer{}, reader: c.Reader, done: make(chan error, 1)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mirrorlet log for %s:\n%s", node, a.Logs.String())
		}
	})
	a.Options = app.Options{
		RestConfig: c.RestConfig, NodeName: node, PodManifestPath: c.Dir, FileCheckFrequency: 2 * time.Second,
		Runtime: c.Runtime, HealthzBindAddress: "0", MetricsBindAddress: "0", ResyncPeriod: time.Second,
		Log: zap.New(zap.UseDevMode(true), zap.WriteTo(a.Logs)).WithValues("node", node),
	}
	for _, opt := range c.Options {
		opt(&a.Options)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func(o app.Options) { a.done <- app.Run(ctx, o) }(a.Options)
	t.Cleanup(a.Stop)
	return a
}

// Stop stops mirrorlet (not its pods) and waits for it; it is a no-op the
// second time.
func (a *Agent) Stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.done:
		if err != nil {
			a.T.Errorf("mirrorlet for %s stopped with: %v", a.Node, err)
		}
	case <-time.After(Timeout):
		a.T.Errorf("mirrorlet for %s did not stop within %s", a.Node, Timeout)
	}
}

// Write writes a manifest file atomically (write then rename), as an
// editor or a config tool would.
func (a *Agent) Write(name, content string) {
	a.T.Helper()
	tmp := filepath.Join(a.Dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		a.T.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(a.Dir, name)); err != nil {
		a.T.Fatal(err)
	}
}

// Remove removes a manifest file.
func (a *Agent) Remove(name string) {
	a.T.Helper()
	if err := os.Remove(filepath.Join(a.Dir, name)); err != nil {
		a.T.Fatal(err)
	}
}

// Key is the mirror's key of the static pod name (namespace default).
func (a *Agent) Key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "default", Name: name + "-" + a.Node}
}

// WaitMirror waits until the mirror of name exists and cond (if any) holds.
func (a *Agent) WaitMirror(name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	a.T.Helper()
	var got *corev1.Pod
	Eventually(a.T, fmt.Sprintf("mirror %s", a.Key(name)), func() bool {
		pod := &corev1.Pod{}
		if err := a.reader.Get(context.Background(), a.Key(name), pod); err != nil {
			return false
		}
		got = pod
		return cond == nil || cond(pod)
	})
	return got
}

// WaitNoMirror waits until the mirror of name is gone.
func (a *Agent) WaitNoMirror(name string) {
	a.T.Helper()
	Eventually(a.T, fmt.Sprintf("mirror %s gone", a.Key(name)), func() bool {
		return apierrors.IsNotFound(a.reader.Get(context.Background(), a.Key(name), &corev1.Pod{}))
	})
}

// RuntimePod returns the runtime pod of name, if the fake runs one.
func (a *Agent) RuntimePod(name string) (mruntime.Pod, bool) {
	for _, p := range a.RT.Pods() {
		if p.Name == a.Key(name).Name {
			return p, true
		}
	}
	return mruntime.Pod{}, false
}

// WaitRunning waits until containers containers of the runtime pod of
// name run, and returns the pod.
func (a *Agent) WaitRunning(name string, containers int) mruntime.Pod {
	a.T.Helper()
	var got mruntime.Pod
	Eventually(a.T, fmt.Sprintf("runtime pod %s running", name), func() bool {
		p, ok := a.RuntimePod(name)
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

// Eventually polls cond until it holds, failing the test at Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), Interval, Timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s", Timeout, what)
	}
}

// Consistently checks that cond holds for the whole of d.
func Consistently(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), Interval, d, true,
		func(context.Context) (bool, error) { return !cond(), nil })
	if err == nil {
		t.Fatalf("%s stopped holding", what)
	}
}

// IsRunning reports whether a mirror's phase is Running.
func IsRunning(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

// LogBuffer keeps an agent's log. Safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count returns how many times s occurs in the log.
func (l *LogBuffer) Count(s string) int { return strings.Count(l.String(), s) }

// PodManifest returns a one-container Pod manifest (container "web" with
// containerPort 80).
func PodManifest(name string, labels map[string]string, image string) string {
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
