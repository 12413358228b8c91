package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// Fault 2, mirrorlet killed with SIGKILL at random points of a busy
// reconcile: each loop adds, replaces and removes some of 20 pods, kills
// mirrorlet 0-1.5 s later and starts it again. Afterwards no container
// runs twice (checked at every poll, not only at the end), none is
// lost, no container that was not changed restarted (nor one that was
// changed and had started: the kill may cancel a start, and the attempt
// that never ran counts as a restart, as on a kubelet), and the mirrors
// are those of the pods that run. 5 loops; 20 with FAULTS_FULL=1;
// FAULTS_SEED repeats a run.
func TestKillDuringReconcile(t *testing.T) {
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("FAULTS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: FAULTS_SEED=%d repeats this run", seed, seed)
		}
	})
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	loops := 5
	if full {
		loops = 20
	}
	a := startAgent(t)
	w := &workload{a: a, want: map[string]*corev1.Pod{}, ports: map[string]int{}}
	for i := range 20 {
		name := fmt.Sprintf("pod%02d", i)
		w.ports[name] = nodetest.FreePort(t)
		w.put(name, 0)
	}
	w.waitConverged(t, "the 20 pods")
	for loop := range loops {
		before, err := a.nodeView()
		if err != nil {
			t.Fatal(err)
		}
		touched := w.change(rng, loop+1)
		delay := time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
		<-time.After(delay) // the workload's pace: where in the reconcile the kill lands
		a.Stop(syscall.SIGKILL)
		a.Start()
		start := time.Now()
		w.waitConverged(t, fmt.Sprintf("loop %d (kill after %s)", loop, delay.Round(time.Millisecond)))
		// Converged may hold before the new mirrorlet has read anything:
		// check again once it is ready (caches synced, runtime read).
		nodetest.Eventually(t, time.Minute, "mirrorlet ready", func() bool { code, _ := a.readyz(); return code == 200 })
		w.waitConverged(t, fmt.Sprintf("loop %d, mirrorlet ready", loop))
		t.Logf("loop %d: %d pods changed, killed after %s, converged %s after the restart", loop, len(touched),
			delay.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > 5*time.Second {
			for name := range touched {
				t.Logf("slow loop: pod %s: %s", name, a.attempts(name))
			}
		}
		w.checkUntouched(t, before, touched)
	}
}

// workload is the set of pods a test wants on the node.
type workload struct {
	a     *agent
	want  map[string]*corev1.Pod
	ports map[string]int
}

// put writes version v of pod name.
func (w *workload) put(name string, v int) {
	w.want[name] = webPod(name, w.ports[name], "--message", fmt.Sprintf("v%d", v))
	w.a.WriteManifest(name+".yaml", w.want[name])
}

// change replaces about a quarter of the pods, and adds or removes about
// one in ten; it returns the names it changed.
func (w *workload) change(rng *rand.Rand, v int) map[string]bool {
	touched := map[string]bool{}
	names := make([]string, 0, len(w.ports))
	for name := range w.ports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		r := rng.Float64()
		_, present := w.want[name]
		switch {
		case r < 0.1 && present:
			delete(w.want, name)
			_ = os.Remove(filepath.Join(w.a.Manifests, name+".yaml"))
		case r < 0.1 || r < 0.35 && present:
			w.put(name, v)
		default:
			continue
		}
		touched[name] = true
	}
	return touched
}

var errRunsTwice = errors.New("runs twice")

// waitConverged waits until the node and the API show exactly the wanted
// pods; a pod or container running twice fails the test at once.
func (w *workload) waitConverged(t *testing.T, what string) {
	t.Helper()
	eventuallyNil(t, 3*time.Minute, what+" converged", func() error {
		err := w.a.converged(w.want)
		if errors.Is(err, errRunsTwice) {
			t.Fatalf("%s: %v", what, err)
		}
		return err
	})
}

// checkUntouched: every pod the loop did not change runs the container it
// ran before, never restarted.
func (w *workload) checkUntouched(t *testing.T, before map[string]running, touched map[string]bool) {
	t.Helper()
	after, err := w.a.nodeView()
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range before {
		if touched[name] {
			continue
		}
		now := after[name]
		if now.sandbox != r.sandbox || now.containers["web"] != r.containers["web"] || now.restarts["web"] != r.restarts["web"] {
			t.Errorf("pod %s was not changed but its container changed: sandbox %s -> %s, container %s -> %s, attempt %d -> %d",
				name, r.sandbox, now.sandbox, r.containers["web"], now.containers["web"], r.restarts["web"], now.restarts["web"])
		}
	}
	for name := range touched {
		if r, ok := after[name]; ok && r.restarts["web"] != 0 && w.a.anAttemptRan(name, r.sandbox) {
			t.Errorf("pod %s, changed in this loop, restarted a container that had run: %s; its first attempt logged:\n%s",
				name, w.a.attempts(name), w.a.containerLog(r.uid, name, 0))
		}
	}
}

// anAttemptRan says whether a container attempt of pod other than the
// running one ever started in sandbox. An attempt that never started (the
// kill cancelled its start: StartError, or it was left Created and
// removed) is not a restart of a running container, though it counts as
// one, as on a kubelet.
func (a *agent) anAttemptRan(pod, sandbox string) bool {
	for _, p := range a.runtimePods() {
		if p.SandboxID != sandbox {
			continue
		}
		for _, c := range p.Containers {
			if c.State != mruntime.ContainerRunning && !c.StartedAt.IsZero() {
				return true
			}
		}
	}
	return false
}

// attempts describes every container attempt of pod on the node.
func (a *agent) attempts(pod string) string {
	var b strings.Builder
	for _, p := range a.runtimePods() {
		if p.Name != a.mirrorName(pod) {
			continue
		}
		fmt.Fprintf(&b, "sandbox %.12s ready=%v uid %s:", p.SandboxID, p.Ready, p.UID)
		for _, c := range p.Containers {
			fmt.Fprintf(&b, " [%.12s attempt %d %s exit %d %s %q created %s started %s finished %s]", c.ID, c.Attempt, c.State, c.ExitCode, c.Reason, c.Message,
				c.CreatedAt.Format("15:04:05.000"), c.StartedAt.Format("15:04:05.000"), c.FinishedAt.Format("15:04:05.000"))
		}
	}
	return b.String()
}

// containerLog is the log file of one attempt of pod's web container.
func (a *agent) containerLog(uid, pod string, attempt int) string {
	data, err := os.ReadFile(filepath.Join(a.logs, "default_"+a.mirrorName(pod)+"_"+uid, "web", fmt.Sprintf("%d.log", attempt)))
	if err != nil {
		return err.Error()
	}
	return string(data)
}
