package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// Fault 9, the soak (`make soak`, FAULTS_SOAK=1; not in CI): 30 minutes
// (SOAK_DURATION) of random manifest edits, mirror deletes and container
// kills over 50 pods, one a second. Every minute it prints mirrorlet's
// RSS, goroutines, open files and the node's sandboxes; at the end every
// pod must run as its manifest says, and those figures must be flat
// (compared with the second minute, once everything is up).
func TestSoak(t *testing.T) {
	if os.Getenv("FAULTS_SOAK") == "" {
		t.Skip("the soak runs with `make soak` (FAULTS_SOAK=1)")
	}
	duration := 30 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("SOAK_DURATION")); err == nil {
		duration = d
	}
	metricsPort := nodetest.FreePort(t)
	a := startAgent(t, withFlags("--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort)))
	w := &workload{a: a, want: map[string]*corev1.Pod{}, ports: map[string]int{}}
	for i := range 50 {
		name := fmt.Sprintf("soak%02d", i)
		w.ports[name] = nodetest.FreePort(t)
		w.put(name, 0)
	}
	w.waitConverged(t, "the 50 pods")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	var samples []soakSample
	start := time.Now()
	tick, minute := time.NewTicker(time.Second), time.NewTicker(time.Minute)
	defer tick.Stop()
	defer minute.Stop()
	counts := map[string]int{}
	for time.Since(start) < duration {
		select {
		case <-tick.C:
			counts[w.soakStep(t, rng)]++
		case <-minute.C:
			s := a.sample(t, metricsPort)
			samples = append(samples, s)
			t.Logf("minute %d: %s; actions so far %v", len(samples), s, counts)
		}
	}
	w.waitConverged(t, "every pod after the soak")
	final := a.sample(t, metricsPort)
	t.Logf("after the soak, converged: %s", final)
	checkFlat(t, samples, final)
}

// soakStep does one random thing to the node or the API and names it.
func (w *workload) soakStep(t *testing.T, rng *rand.Rand) string {
	names := make([]string, 0, len(w.want))
	for name := range w.want {
		names = append(names, name)
	}
	name := names[rng.IntN(len(names))]
	switch r := rng.IntN(4); r {
	case 0:
		w.put(name, rng.IntN(1000)+1)
		return "spec edit"
	case 1:
		w.want[name].Labels["soak"] = strconv.Itoa(rng.IntN(1000))
		w.a.WriteManifest(name+".yaml", w.want[name])
		return "label edit"
	case 2:
		var opts []client.DeleteOption
		if rng.IntN(2) == 0 {
			opts = append(opts, client.GracePeriodSeconds(0))
		}
		_ = admin.Delete(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: w.a.mirrorName(name)}}, opts...)
		return "mirror delete"
	default:
		view, err := w.a.nodeView()
		if err != nil || view[name].containers["web"] == "" {
			return "kill skipped"
		}
		// ctr may fail when the container just exited: not a test failure.
		_ = exec.Command(filepath.Join(ctd.Dir, "bin", "ctr"), "--address", strings.TrimPrefix(ctd.Endpoint, "unix://"),
			"-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", view[name].containers["web"]).Run()
		return "container kill"
	}
}

// soakSample is what the soak prints every minute.
type soakSample struct {
	rssKiB, goroutines, openFiles, sandboxes int
}

func (s soakSample) String() string {
	return fmt.Sprintf("RSS %d MiB, %d goroutines, %d open files, %d sandboxes", s.rssKiB/1024, s.goroutines, s.openFiles, s.sandboxes)
}

func (a *agent) sample(t *testing.T, metricsPort int) soakSample {
	t.Helper()
	pid := a.Pid()
	var s soakSample
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			s.rssKiB, _ = strconv.Atoi(f[1])
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	s.openFiles = len(fds)
	s.sandboxes = len(a.runtimePods())
	if body, err := nodetest.Get(metricsPort, "/metrics"); err == nil {
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				s.goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	return s
}

// checkFlat compares the end with the second minute: RSS within 1.5x,
// goroutines and open files within 20% (+20), sandboxes no more than
// one per pod after convergence.
func checkFlat(t *testing.T, samples []soakSample, final soakSample) {
	t.Helper()
	if len(samples) < 3 {
		t.Logf("only %d samples: too short to judge flatness", len(samples))
		return
	}
	base := samples[1]
	if final.rssKiB > base.rssKiB*3/2 {
		t.Errorf("RSS grew from %d to %d MiB", base.rssKiB/1024, final.rssKiB/1024)
	}
	if final.goroutines > base.goroutines*6/5+20 {
		t.Errorf("goroutines grew from %d to %d", base.goroutines, final.goroutines)
	}
	if final.openFiles > base.openFiles*6/5+20 {
		t.Errorf("open files grew from %d to %d", base.openFiles, final.openFiles)
	}
	if final.sandboxes > 50 {
		t.Errorf("%d sandboxes for 50 pods after convergence: leaked", final.sandboxes)
	}
}
