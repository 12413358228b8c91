package faults

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// Fault 4, manifest churn (the kubelet's own e2e case): one manifest
// rewritten 300 times 100 ms apart, each a new spec, then a final version.
// Exactly the final version runs, its mirror shows it, and nothing of the
// versions in between is left: no sandbox, container, mount or log
// directory.
func TestManifestChurn(t *testing.T) {
	a := startAgent(t)
	port := nodetest.FreePort(t)
	baseline := ctrContainers(t)
	const rewrites = 300
	seen := map[string]bool{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range rewrites {
		a.WriteManifest("churn.yaml", webPod("churn", port, "--message", fmt.Sprintf("version-%d", i)))
		for _, p := range a.runtimePods() {
			seen[p.SandboxID] = true
			for _, c := range p.Containers {
				seen[c.ID] = true
			}
		}
		<-tick.C
	}
	final := webPod("churn", port, "--message", "final")
	a.WriteManifest("churn.yaml", final)
	start := time.Now()
	want := map[string]*corev1.Pod{"churn": final}
	// Sandboxes created 2 s or more after the final write, by pod UID (a
	// sync under way at the write may still start the version it read).
	startedAfter := map[string]bool{}
	eventuallyNil(t, 2*time.Minute, "the final version running and mirrored", func() error {
		for _, p := range a.runtimePods() {
			if p.CreatedAt.After(start.Add(2 * time.Second)) {
				startedAfter[string(p.UID)] = true
			}
		}
		return a.converged(want)
	})
	t.Logf("%d rewrites, %d sandboxes and containers seen during the churn; final version converged %s after its write",
		rewrites, len(seen), time.Since(start).Round(time.Millisecond))
	if body := firstAnswer(t, port); !strings.Contains(body, "final") {
		t.Fatalf("the server answers %q, want the final version", body)
	}
	pods := a.runtimePods()
	if len(pods) != 1 || len(pods[0].Containers) != 1 || pods[0].Containers[0].Attempt != 0 {
		t.Fatalf("runtime pods after the churn: %+v, want one sandbox with one first-attempt container", pods)
	}
	// A replaced version still stopping (its grace period: a container
	// stopped within milliseconds of its start may not have installed its
	// SIGTERM handler yet, and as PID 1 ignores the signal) holds the next
	// one back, as on a kubelet; but then the final version must start,
	// not the one that was desired when the stop began.
	delete(startedAfter, string(pods[0].UID))
	if len(startedAfter) > 0 {
		t.Errorf("versions other than the final one started 2 s or more after the final write: %v", slices.Collect(maps.Keys(startedAfter)))
	}
	keep := map[string]bool{pods[0].SandboxID: true, pods[0].Containers[0].ID: true}
	eventuallyNil(t, time.Minute, "no sandbox, container, mount or log directory of an old version", func() error {
		return a.leftovers(baseline, seen, keep, string(pods[0].UID))
	})
}

// leftovers reports what the churn left behind: containerd containers
// (sandboxes included) not there before besides keep, mounts naming a
// sandbox or container seen during the churn, and pod log directories
// other than the final pod's.
func (a *agent) leftovers(baseline, seen, keep map[string]bool, uid string) error {
	for id := range ctrContainers(a.t) {
		if !baseline[id] && !keep[id] {
			return fmt.Errorf("containerd still has container %s", id)
		}
	}
	if m := mountsNaming(a.t, seen, keep); len(m) > 0 {
		return fmt.Errorf("mounts left: %v", m)
	}
	entries, err := os.ReadDir(a.logs)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), "_"+uid) {
			return fmt.Errorf("log directory %s left", filepath.Join(a.logs, e.Name()))
		}
	}
	if len(entries) != 1 {
		return fmt.Errorf("%d log directories, want the final pod's", len(entries))
	}
	return nil
}

var isID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ctrContainers is every container containerd has in the CRI namespace.
func ctrContainers(t testing.TB) map[string]bool {
	out := map[string]bool{}
	for _, id := range strings.Fields(ctd.Ctr(t, "containers", "ls", "-q")) {
		if isID.MatchString(id) { // ctr may print warnings too
			out[id] = true
		}
	}
	return out
}

// mountsNaming lists the mount points that name one of ids but none of keep.
func mountsNaming(t testing.TB, ids, keep map[string]bool) []string {
	var out []string
	for _, m := range nodetest.MountPoints(t) {
		for id := range ids {
			if !keep[id] && strings.Contains(m, id) {
				out = append(out, m)
			}
		}
	}
	return out
}
