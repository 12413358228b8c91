package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/mirrorlet/mirrorlet/runtime/cri"
)

// The harness's own unit tests (run by `go test ./test/bench/` without
// MIRRORLET_BENCH): the fake CRI server streams events as containerd does,
// and the targets keep their ids whatever ran.

// TestFakeCRIStreamsEvents: a sandbox started through the fake CRI server
// is an event on the stream, with the sandbox's labels (mirrorlet finds
// the pod by them). k8s.io/cri-client's fake alone closes the stream at
// once.
func TestFakeCRIStreamsEvents(t *testing.T) {
	if workDir == "" {
		workDir = t.TempDir()
		t.Cleanup(func() { workDir = "" })
	}
	f := startFakeCRI(t)
	c := criClient(t, f.endpoint)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := c.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is subscribed once the server holds it.
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.subs) > 0, nil
	})
	if err != nil {
		t.Fatalf("the event stream was not subscribed: %v", err)
	}
	labels := map[string]string{cri.LabelManaged: "true", cri.LabelPodUID: "uid-1"}
	resp, err := c.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "default", Uid: "uid-1"}, Labels: labels}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatalf("receiving the event of the new sandbox: %v", err)
	}
	if ev.ContainerId != resp.PodSandboxId || ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT ||
		ev.GetPodSandboxStatus().GetLabels()[cri.LabelPodUID] != "uid-1" {
		t.Fatalf("event %v, want CONTAINER_STARTED_EVENT of sandbox %s with its labels", ev, resp.PodSandboxId)
	}
}

// TestTargetsKeepTheirIDs: a target's id is the same whether or not the
// scenarios before it ran, so the notes below RESULTS.md's marker can name
// it; the ids not met are listed.
func TestTargetsKeepTheirIDs(t *testing.T) {
	empty := (&report{}).checks()
	s := &scenario{name: "50", n: 50, rss: 100e6, steady: map[string]float64{}}
	s.add("manifest written → mirror exists", []time.Duration{time.Second})
	full := &report{scenarios: []*scenario{s}, fleetRes: &fleetResult{agents: 100, pods: 10, perMin: map[string]float64{"update leases": 600}}}
	got := full.checks()
	if len(got) != len(empty) {
		t.Fatalf("%d targets with a scenario, %d without", len(got), len(empty))
	}
	for i := range got {
		if got[i].target != empty[i].target {
			t.Fatalf("T%d is %q with a scenario and %q without", i+1, got[i].target, empty[i].target)
		}
	}
	table := full.targets()
	if !strings.Contains(table, "Not met: T2,") || !strings.Contains(table, "| T2 | manifest → mirror, 50 pods") {
		t.Fatalf("T2 (50 pods p99 1 s) not listed as not met:\n%s", table)
	}
}
