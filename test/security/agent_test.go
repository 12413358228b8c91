package security

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
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// agent is one mirrorlet run in-process, the way main runs it, as its own
// node's identity, with a manifest directory and the fake runtime.
type agent struct {
	t      testing.TB
	node   string
	dir    string
	rt     *fake.Runtime
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
}

// startAgent runs mirrorlet for node as user mirrorlet:node:<node> in group
// mirrorlet:nodes until the test ends.
func startAgent(t testing.TB, node string) *agent {
	t.Helper()
	cfg, err := userConfig("mirrorlet:node:"+node, "mirrorlet:nodes")
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{t: t, node: node, dir: t.TempDir(), rt: fake.New(nil), logs: &logBuffer{}, done: make(chan error, 1)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mirrorlet log for %s:\n%s", node, a.logs.String())
		}
	})
	o := app.Options{
		RestConfig: cfg, NodeName: node, PodManifestPath: a.dir, FileCheckFrequency: 2 * time.Second,
		Runtime: a.rt, HealthzBindAddress: "0", MetricsBindAddress: "0", ResyncPeriod: time.Second,
		Log: zap.New(zap.UseDevMode(true), zap.WriteTo(a.logs)).WithValues("node", node),
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- app.Run(ctx, o) }()
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	a.cancel()
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
		if err := admin.Get(context.Background(), a.key(name), pod); err != nil {
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
		return apierrors.IsNotFound(admin.Get(context.Background(), a.key(name), &corev1.Pod{}))
	})
}

func isRunning(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

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
	fmt.Fprintf(&b, "spec:\n  containers:\n  - name: web\n    image: %s\n", image)
	return b.String()
}
