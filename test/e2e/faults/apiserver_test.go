package faults

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/test/nodetest"
)

// recoveryBound is how soon after the API server is ready again every
// mirror must be correct and the Node Ready: the issue says within 1 s;
// 2 s leaves room for a loaded machine (measured 0.01-0.1 s; 7-28 s before
// the client held its requests during the outage, when each mirror
// write's own back-off had grown with its failures).
const recoveryBound = 2 * time.Second

// Fault 1, the API server down (stopped, then started again on the same
// etcd data; 30 s here, 2 minutes with FAULTS_FULL=1). No container
// restarts; manifest adds, edits and removals made during the outage are
// applied on the node at once; when the API server is ready again every
// mirror is correct within recoveryBound (orphan removed, status current,
// Node Ready); and mirrorlet's connection attempts through the proxy back
// off, as one, with jitter (checkNoStorm).
func TestAPIServerDown(t *testing.T) {
	outage := 30 * time.Second
	if full {
		outage = 2 * time.Minute
	}
	metricsPort := nodetest.FreePort(t)
	a := startAgent(t, withFlags("--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort)))
	w := &workload{a: a, want: map[string]*corev1.Pod{}, ports: map[string]int{}}
	for _, name := range []string{"keep", "edit", "remove", "add"} {
		w.ports[name] = nodetest.FreePort(t)
	}
	for _, name := range []string{"keep", "edit", "remove"} {
		w.put(name, 1)
	}
	w.waitConverged(t, "three pods")
	before, err := a.nodeView()
	if err != nil {
		t.Fatal(err)
	}

	requestsBefore := apiRequests(t, metricsPort)
	down := time.Now()
	if err := cp.stopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.ensureAPIServer() })
	t.Logf("API server stopped in %s", time.Since(down).Round(time.Millisecond))
	w.put("edit", 2)
	w.put("add", 1)
	delete(w.want, "remove")
	a.RemoveManifest("remove.yaml")
	edited := time.Now()
	eventuallyNil(t, 30*time.Second, "the node to apply the edits made during the outage", func() error {
		return w.nodeApplied(before)
	})
	t.Logf("edits made during the outage applied on the node in %s", time.Since(edited).Round(time.Millisecond))
	for time.Since(down) < outage {
		if err := w.nodeApplied(before); err != nil {
			t.Fatalf("during the outage: %v", err)
		}
		<-time.After(time.Second) // the outage's length, checked every second
	}
	t.Logf("requests mirrorlet sent while the API server was down, by verb and resource: %s",
		requestsDiff(requestsBefore, apiRequests(t, metricsPort)))
	back := time.Now()
	if err := cp.startAPIServer(); err != nil {
		t.Fatal(err)
	}
	apiUp := time.Since(back)
	checkNoStorm(t, down, back)
	var trail []string // what was still wrong, as it changed, for the figure
	last := ""
	eventuallyNil(t, recoveryBound, "every mirror correct and the Node Ready", func() error {
		err := a.converged(w.want)
		if err == nil && a.nodeReady() != corev1.ConditionTrue {
			err = fmt.Errorf("node not Ready")
		}
		if msg := fmt.Sprint(err); msg != last {
			last = msg
			trail = append(trail, fmt.Sprintf("%s: %s", (time.Since(back)-apiUp).Round(time.Millisecond), msg))
		}
		return err
	})
	t.Logf("after the API server was ready:\n  %s", strings.Join(trail, "\n  "))
	t.Logf("API server down %s; back (ready) in %s; every mirror correct and the Node Ready %s after that",
		back.Sub(down).Round(time.Millisecond), apiUp.Round(time.Millisecond), (time.Since(back) - apiUp).Round(time.Millisecond))
	if err := w.nodeApplied(before); err != nil {
		t.Fatal(err)
	}
}

// nodeApplied checks the node (not the API) after the outage's edits:
// keep runs its container unrestarted, edit runs v2, add runs, remove
// does not, and every wanted server answers with its version.
func (w *workload) nodeApplied(before map[string]running) error {
	now, err := w.a.nodeView()
	if err != nil {
		return err
	}
	if k := now["keep"]; k.containers["web"] != before["keep"].containers["web"] || k.restarts["web"] != 0 {
		return fmt.Errorf("keep's container changed: %s -> %s (attempt %d)", before["keep"].containers["web"], k.containers["web"], k.restarts["web"])
	}
	if _, ok := now["remove"]; ok {
		return fmt.Errorf("remove still runs")
	}
	for name, pod := range w.want {
		body, err := nodetest.Get(w.ports[name], "/")
		want := pod.Spec.Containers[0].Args[len(pod.Spec.Containers[0].Args)-1]
		if err != nil {
			return fmt.Errorf("%s does not answer: %w", name, err)
		}
		if !strings.Contains(body, want) {
			return fmt.Errorf("%s answers %q, want %s", name, body, want)
		}
	}
	return nil
}

// checkNoStorm reads the proxy's connection log for the outage. mirrorlet
// holds its requests while the API server does not answer and probes it
// alone (package apibackoff): 100 ms doubling to 800 ms, each pause plus
// up to 25 % jitter. So: attempts at most 1 per 800 ms plus a few (the
// requests in flight when it went down, the first short pauses); in the
// outage's second half never two within 700 ms (800 ms, less the timing
// noise of the proxy's stamps); and the gaps differ (jitter). Before the
// gate it measured 2.4-4.1/s with gaps of 0-1 s (client-go's per-call
// retries, 1 s apart, in every reflector, the lease renewer and each
// mirror write).
func checkNoStorm(t *testing.T, down, back time.Time) {
	t.Helper()
	mid := down.Add(back.Sub(down) / 2)
	first, second := apiProxy.acceptedBetween(down, mid), apiProxy.acceptedBetween(mid, back)
	all := append(slices.Clone(first), second...)
	outage := back.Sub(down)
	rate := float64(len(all)) / outage.Seconds()
	t.Logf("connection attempts while the API server was down: %d in the first half, %d in the second (%.2f/s); gaps %s",
		len(first), len(second), rate, gaps(all))
	if most := 8 + int(outage/(800*time.Millisecond)); len(all) > most {
		t.Errorf("%d connection attempts in %s while the API server was down (%.2f/s), want at most %d: not backing off as one",
			len(all), outage.Round(time.Second), rate, most)
	}
	if len(second) < 3 {
		t.Errorf("%d connection attempts in the outage's second half: mirrorlet stopped probing", len(second))
		return
	}
	shortest, longest := time.Hour, time.Duration(0)
	for i := 1; i < len(second); i++ {
		gap := second[i].Sub(second[i-1])
		shortest, longest = min(shortest, gap), max(longest, gap)
	}
	if shortest < 700*time.Millisecond {
		t.Errorf("two connection attempts %s apart in the outage's second half, want one per back-off pause (>= 800 ms)", shortest)
	}
	if longest-shortest < 20*time.Millisecond {
		t.Errorf("the gaps between connection attempts span %s to %s: no jitter", shortest, longest)
	}
}

// gaps prints the time between consecutive attempts (the jitter shows).
func gaps(ts []time.Time) string {
	var b strings.Builder
	for i := 1; i < len(ts) && i < 100; i++ {
		fmt.Fprintf(&b, "%s ", ts[i].Sub(ts[i-1]).Round(10*time.Millisecond))
	}
	return b.String()
}

// apiRequests reads mirrorlet_api_requests_total from mirrorlet's /metrics,
// by its labels (verb, resource, subresource).
func apiRequests(t *testing.T, metricsPort int) map[string]float64 {
	t.Helper()
	body, err := nodetest.Get(metricsPort, "/metrics")
	if err != nil {
		t.Fatalf("reading mirrorlet's metrics: %v", err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, "mirrorlet_api_requests_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		out[labels] = v
	}
	return out
}

// requestsDiff prints what grew from before to after, most first.
func requestsDiff(before, after map[string]float64) string {
	type row struct {
		labels string
		n      float64
	}
	var rows []row
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			rows = append(rows, row{k, d})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return int(b.n - a.n) })
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "\n  %4.0f %s", r.n, r.labels)
	}
	return b.String()
}
