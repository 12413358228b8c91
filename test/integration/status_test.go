package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/mirrorlet/mirrorlet/runtime/fake"
)

// mirrorObserver records every version of a mirror a watch delivers.
type mirrorObserver struct {
	mu   sync.Mutex
	seen []string // "phase ready=<status>" per version
	bad  []string
}

// observeMirror watches the pod named name in namespace default until the
// test ends, recording each version's phase and Ready condition; versions
// with a status that is not Running and Ready count as bad.
func observeMirror(t *testing.T, name string) *mirrorObserver {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := &mirrorObserver{}
	lw := cache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "pods", "default", fields.OneTermEqualSelector("metadata.name", name))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		_, _ = watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, nil, func(ev watch.Event) (bool, error) {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				o.record(p)
			}
			return false, nil
		})
	}()
	return o
}

func (o *mirrorObserver) record(p *corev1.Pod) {
	ready := "none"
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = string(c.Status)
		}
	}
	s := fmt.Sprintf("%s %s ready=%s", p.UID, p.Status.Phase, ready)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, s)
	if p.Status.Phase != corev1.PodRunning || ready != string(corev1.ConditionTrue) {
		o.bad = append(o.bad, s)
	}
}

func (o *mirrorObserver) report() (seen, bad []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...), append([]string(nil), o.bad...)
}

// TestStatusDoesNotFlapAcrossRestart: an observer watching a Running,
// Ready mirror through a restart of mirrorlet, whose runtime does not
// answer for a while after the restart, never sees it Pending or not
// Ready: the status is not rewritten before the runtime state is known.
func TestStatusDoesNotFlapAcrossRestart(t *testing.T) {
	node := newNodeName("noflap")
	dir := t.TempDir()
	first := startAgent(t, node, dir, nil)
	first.Write("web.yaml", podManifest("web", map[string]string{"role": "a"}, "nginx:1.27"))
	m := first.WaitMirror("web", func(p *corev1.Pod) bool {
		c := condition(p, corev1.PodReady)
		return isRunning(p) && c != nil && c.Status == corev1.ConditionTrue
	})
	if r := condition(m, corev1.PodReady); m.Generation == 0 || m.Status.ObservedGeneration != m.Generation || r.ObservedGeneration != m.Generation {
		t.Errorf("observedGeneration: status %d, Ready %d; want the generation %d", m.Status.ObservedGeneration, r.ObservedGeneration, m.Generation)
	}
	obs := observeMirror(t, m.Name)
	eventually(t, "the observer sees the mirror", func() bool { seen, _ := obs.report(); return len(seen) > 0 })
	first.Stop()

	first.RT.SetUnreachable(true)
	second := startAgent(t, node, dir, first.RT)
	// A label edit that reaches the mirror shows the new agent at work.
	second.Write("web.yaml", podManifest("web", map[string]string{"role": "b"}, "nginx:1.27"))
	second.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	consistently(t, "Running and Ready while the runtime does not answer", writeWindow/5, func() bool { _, bad := obs.report(); return len(bad) == 0 })
	first.RT.SetUnreachable(false)
	consistently(t, "Running and Ready once it answers", writeWindow/5, func() bool { _, bad := obs.report(); return len(bad) == 0 })
	seen, bad := obs.report()
	t.Logf("versions seen: %v", seen)
	if len(bad) > 0 {
		t.Errorf("the observer saw the mirror not Running and Ready across the restart: %v", bad)
	}
}

// TestReadinessDoesNotFlapAcrossRestart: a container whose readiness probe
// succeeds stays Ready through a restart of mirrorlet, while the new
// prober has no result yet (its first probe hangs until the test lets it
// answer), and after.
func TestReadinessDoesNotFlapAcrossRestart(t *testing.T) {
	node := newNodeName("noflap-probe")
	dir := t.TempDir()
	manifest := func(role string) string {
		return podManifest("web", map[string]string{"role": role}, "nginx:1.27") +
			"    readinessProbe:\n      exec: {command: [ready]}\n      periodSeconds: 1\n      timeoutSeconds: 20\n"
	}
	rt := fake.New(nil)
	first := startAgent(t, node, dir, rt)
	first.Write("web.yaml", manifest("a"))
	m := first.WaitMirror("web", func(p *corev1.Pod) bool {
		c := condition(p, corev1.PodReady)
		return isRunning(p) && c != nil && c.Status == corev1.ConditionTrue
	})
	obs := observeMirror(t, m.Name)
	eventually(t, "the observer sees the mirror", func() bool { seen, _ := obs.report(); return len(seen) > 0 })
	first.Stop()

	release := make(chan struct{})
	rt.SetExec(func(ctx context.Context, _ string, _ []string, _ time.Duration) ([]byte, []byte, int32, error) {
		select {
		case <-release:
			return nil, nil, 0, nil
		case <-ctx.Done():
			return nil, nil, 0, ctx.Err()
		}
	})
	second := startAgent(t, node, dir, rt)
	second.Write("web.yaml", manifest("b"))
	second.WaitMirror("web", func(p *corev1.Pod) bool { return p.Labels["role"] == "b" })
	consistently(t, "Ready while the probe has no result", writeWindow/5, func() bool { _, bad := obs.report(); return len(bad) == 0 })
	close(release)
	consistently(t, "Ready once it answers", writeWindow/5, func() bool { _, bad := obs.report(); return len(bad) == 0 })
	seen, bad := obs.report()
	t.Logf("versions seen: %v", seen)
	if len(bad) > 0 {
		t.Errorf("the observer saw the mirror not Running and Ready across the restart: %v", bad)
	}
}
