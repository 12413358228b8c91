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

// total is the fleet's steady API requests per minute.
func (f *fleetResult) total() float64 {
	total := 0.0
	for _, v := range f.perMin {
		total += v
	}
	return total
}

// perNode is the steady API requests per minute per agent.
func (f *fleetResult) perNode() float64 { return f.total() / float64(f.agents) }

func (f *fleetResult) markdown() string {
	total, perNode := f.total(), f.perNode()
	return fmt.Sprintf("| fleet | figure |\n|---|---|\n"+
		"| %d in-process agents × %d pods (fake runtime), one API server | all %d mirrors Running %s after the manifests |\n"+
		"| steady API requests, whole fleet (window %s) | %.0f/min (%s) |\n"+
		"| per node | %.2f/min |\n| 5,000 nodes by that slope | %.0f/min (%.1f/s) |\n",
		f.agents, f.pods, f.agents*f.pods, ms(f.toAll), f.window, total, counts(f.perMin), perNode, perNode*5000, perNode*5000/60) +
		map[bool]string{true: "\nNote: " + f.note + "\n"}[f.note != ""]
}

// maxInstances is where the user's inotify instance limit is set.
const maxInstances = "/proc/sys/fs/inotify/max_user_instances"

// fleetSize returns how many in-process agents the inotify limit lets
// run, at most want, and a note when it is fewer. Each agent takes one
// inotify instance (its manifest directory; contentwatch starts one only
// for pods that opt in), and fs.inotify.max_user_instances counts them for
// the whole user (128 by default, shared with every other process of the
// user). When root, the limit is raised for the run (restored when the
// test ends) if the fleet would not fit.
func fleetSize(t testing.TB, want int) (int, string) {
	limit, err := readInt(maxInstances)
	if err != nil {
		return want, ""
	}
	inUse := inotifyInUse()
	const margin = 16 // the harness, the API server, client certificate watchers
	need := inUse + want + margin
	if limit >= need {
		return want, ""
	}
	if os.Geteuid() == 0 {
		if err := os.WriteFile(maxInstances, []byte(strconv.Itoa(need)), 0o644); err == nil {
			t.Cleanup(func() { _ = os.WriteFile(maxInstances, []byte(strconv.Itoa(limit)), 0o644) })
			return want, fmt.Sprintf("fs.inotify.max_user_instances raised from %d to %d for the fleet "+
				"(%d instances in use by the user's other processes), restored after", limit, need, inUse)
		}
	}
	n := max(1, min(want, limit-inUse-margin))
	return n, fmt.Sprintf("%d agents, not %d: fs.inotify.max_user_instances (%d, %d in use) allows no more in one user "+
		"(each agent takes one); run as root, or `sysctl fs.inotify.max_user_instances=%d`", n, want, limit, inUse, need)
}

func readInt(file string) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// inotifyInUse counts the inotify instances open on the machine.
func inotifyInUse() int {
	inUse := 0
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == "anon_inode:inotify" {
			inUse++
		}
	}
	return inUse
}

// fleet runs agents in-process agents with pods static pods each; note
// says why there are fewer than asked, or what made room for them.
func (r *report) fleet(t *testing.T, agents, pods int, note string) {
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
	res := &fleetResult{agents: agents, pods: pods, toAll: last.Sub(start), window: 60 * time.Second, note: note}
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
