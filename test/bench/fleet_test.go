package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// fleetResult is what the fleet scenario measured.
type fleetResult struct {
	agents, pods int
	toAll        time.Duration
	perMin       map[string]float64
	window       time.Duration
	note         string
}

func (f *fleetResult) markdown() string {
	total := 0.0
	for _, v := range f.perMin {
		total += v
	}
	perNode := total / float64(f.agents)
	return fmt.Sprintf("| fleet | figure |\n|---|---|\n"+
		"| %d in-process agents × %d pods (fake runtime), one API server | all %d mirrors Running %s after the manifests |\n"+
		"| steady API requests, whole fleet (window %s) | %.0f/min (%s) |\n"+
		"| per node | %.2f/min |\n| 5,000 nodes by that slope | %.0f/min (%.1f/s) |\n",
		f.agents, f.pods, f.agents*f.pods, ms(f.toAll), f.window, total, counts(f.perMin), perNode, perNode*5000, perNode*5000/60) +
		map[bool]string{true: "\nNote: " + f.note + "\n"}[f.note != ""]
}

// fleetSize returns how many in-process agents the inotify limit lets run,
// at most want: each agent takes two inotify instances (manifest directory,
// host file watcher) and fs.inotify.max_user_instances counts them for the
// whole user (128 by default).
func fleetSize(want int) int {
	data, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances")
	if err != nil {
		return want
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return want
	}
	inUse := 0
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == "anon_inode:inotify" {
			inUse++
		}
	}
	return max(1, min(want, (limit-inUse-16)/2))
}

// fleet runs agents in-process agents with pods static pods each.
func (r *report) fleet(t *testing.T, agents, pods int) {
	rec := newRecorder()
	if err := rec.watchPods(t.Context(), admin, ""); err != nil {
		t.Fatal(err)
	}
	ws := make([]*workload, agents)
	for i := range ws {
		node := fmt.Sprintf("bench-fleet-%03d", i)
		tg := startInProcess(t, node, agentConfig(t, node))
		ws[i] = &workload{t: t, tg: tg, cs: admin, rec: rec, n: pods, pod: hostPod("registry.invalid/bench/pause:v1"),
			limit: 5 * time.Minute, res: &scenario{}}
	}
	start := time.Now()
	for _, w := range ws {
		w.writeAll(nil)
	}
	var last time.Time
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 5*time.Minute, true,
		func(context.Context) (bool, error) {
			last = time.Time{}
			for _, w := range ws {
				for _, name := range w.names() {
					at, ok := rec.first(w.mirror(name), start, ready)
					if !ok {
						return false, nil
					}
					last = latest(last, at)
				}
			}
			return true, nil
		})
	if err != nil {
		t.Fatalf("fleet: not every mirror Running: %v", err)
	}
	res := &fleetResult{agents: agents, pods: pods, toAll: last.Sub(start), window: 60 * time.Second}
	if agents < 100 {
		res.note = fmt.Sprintf("%d agents, not 100: fs.inotify.max_user_instances allows no more in one user "+
			"(each agent takes two); `sysctl fs.inotify.max_user_instances=512` runs 100 × 10", agents)
	}
	req0, _ := registryRequests()
	<-time.After(res.window)
	req1, _ := registryRequests()
	res.perMin = delta(req0, req1, time.Minute.Seconds()/res.window.Seconds())
	r.fleetRes = res
	for _, w := range ws {
		w.cleanup()
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
