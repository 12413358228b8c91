package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
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

// TestParseAPF: the API server's Priority and Fairness counters are read
// by FlowSchema and priority level; waits over 100 ms and 1 s come from
// the histogram's buckets.
func TestParseAPF(t *testing.T) {
	const text = `# HELP apiserver_flowcontrol_dispatched_requests_total x
apiserver_flowcontrol_dispatched_requests_total{flow_schema="global-default",priority_level="global-default"} 2100
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 7
apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",priority_level="global-default",reason="queue-full"} 3
apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",priority_level="global-default",reason="time-out"} 2
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="global-default",priority_level="global-default",le="0"} 0
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="global-default",priority_level="global-default",le="0.005"} 2060
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="global-default",priority_level="global-default",le="0.1"} 2080
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="global-default",priority_level="global-default",le="1"} 2098
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="true",flow_schema="global-default",priority_level="global-default"} 2100
apiserver_flowcontrol_request_wait_duration_seconds_count{execute="false",flow_schema="global-default",priority_level="global-default"} 5
apiserver_flowcontrol_nominal_limit_seats{priority_level="global-default"} 49
`
	snap := parseAPF(text)
	got := snap.counts[apfMatch{flowSchema: "global-default", priorityLevel: "global-default"}]
	want := apfCounts{dispatched: 2100, waited5ms: 40, waited100: 20, waited1s: 2, rejected: 5}
	if got != want {
		t.Fatalf("global-default: %+v, want %+v", got, want)
	}
	if snap.seats["global-default"] != 49 {
		t.Fatalf("nominal seats %v, want 49 for global-default", snap.seats)
	}
}

// TestStarvationTarget: the target is met when every probe's create-burst
// p99 is within the SLOs, not met when one is over.
func TestStarvationTarget(t *testing.T) {
	ds := func(d time.Duration) []time.Duration { return []time.Duration{d} }
	s := &scenario{n: 1000, probes: []probeRow{
		{who: "a", phase: phaseCreate, get: ds(50 * time.Millisecond), list: ds(4 * time.Second)},
		{who: "a", phase: phaseQuiet, get: ds(time.Millisecond), list: ds(time.Millisecond)},
	}}
	r := &report{scenarios: []*scenario{s}}
	if c := r.starvationChecks()[0]; !c.ok || !c.met {
		t.Fatalf("within the SLOs: %+v, want met", c)
	}
	s.probes[0].get = ds(1100 * time.Millisecond)
	if c := r.starvationChecks()[0]; c.met {
		t.Fatalf("GET p99 1.1 s: %+v, want not met", c)
	}
}

// errorsTB records Errorf instead of failing.
type errorsTB struct {
	testing.TB
	errs []string
}

func (e *errorsTB) Errorf(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

// nodeOnly is a target of which only the node name is used.
type nodeOnly struct{ target }

func (nodeOnly) node() string { return "n1" }

// TestSettledReportsAReplacedMirror: a delete step deletes the mirrors the
// API server has (not the last ones the harness saw), and a mirror
// replaced since the last step ended, with nothing deleting it, is an
// error naming both UIDs.
func TestSettledReportsAReplacedMirror(t *testing.T) {
	pod := func(uid, rv string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "m-n1", Namespace: "default", UID: types.UID(uid), ResourceVersion: rv},
			Spec: corev1.PodSpec{NodeName: "n1"}}
	}
	for _, tc := range []struct {
		name     string
		inAPI    *corev1.Pod
		replaced bool
	}{
		{"same mirror", pod("uid-2", "12"), false},
		{"replaced", pod("uid-3", "14"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			for _, p := range []*corev1.Pod{pod("uid-2", "12"), tc.inAPI} {
				e := event{at: time.Now(), typ: watch.Modified, pod: p, name: p.Name}
				rec.events, rec.byName[p.Name] = append(rec.events, e), append(rec.byName[p.Name], e)
			}
			tb := &errorsTB{TB: t}
			w := &workload{t: tb, tg: nodeOnly{}, rec: rec, cs: fake.NewClientset(tc.inAPI),
				stepEnd: map[string]*corev1.Pod{"m-n1": pod("uid-2", "12")}}
			got := w.settled("step")
			if got["m-n1"] == nil || got["m-n1"].UID != tc.inAPI.UID {
				t.Fatalf("settled %v, want the API's mirror %s", got, tc.inAPI.UID)
			}
			if replaced := len(tb.errs) > 0; replaced != tc.replaced ||
				(replaced && !strings.Contains(tb.errs[0], "uid-2 → uid-3")) {
				t.Fatalf("errors %q, want replaced=%v naming uid-2 → uid-3", tb.errs, tc.replaced)
			}
		})
	}
}
