package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// workload is the benchmark's sequence of steps for n static pods on one
// target, recorded into res.
type workload struct {
	t     testing.TB
	tg    target
	cs    kubernetes.Interface
	rec   *recorder
	n     int
	pod   func(name string, labels map[string]string) *corev1.Pod
	res   *scenario
	quiet time.Duration // steady-state window
	// profile, when set, is the file of a CPU profile of the test process
	// (in-process targets: mirrorlet) over the create step.
	profile string
	// drained reports whether the runtime stopped every pod; nil: no wait.
	drained func() bool
	limit   time.Duration // deadline of each step
	// labels are the labels of the manifests last written; edit is the
	// spec edit they carry (0: none).
	labels map[string]string
	edit   int
	// ports are the web servers' ports by pod (nil: not web servers);
	// criClient, when set, runs the node-side steps (spec edit, crash).
	ports     map[string]int
	criClient runtimeapi.RuntimeServiceClient
	// probes are other API clients whose latency is reported per phase
	// (nil: none).
	probes []*apiProbe
	// stepEnd is every mirror as the last wait of a step saw it (see
	// settled).
	stepEnd map[string]*corev1.Pod
}

func (w *workload) names() []string {
	out := make([]string, w.n)
	for i := range out {
		out[i] = fmt.Sprintf("bench-%04d", i)
	}
	return out
}

func (w *workload) mirror(name string) string { return name + "-" + w.tg.node() }

// writeAll writes every manifest (labels added to each) and returns when
// the last file is in place.
func (w *workload) writeAll(labels map[string]string) {
	w.labels = labels
	for _, name := range w.names() {
		if err := manifest(w.tg.dir(), name+".yaml", edited(w.pod(name, labels), w.edit)); err != nil {
			w.t.Fatal(err)
		}
	}
}

// latencies waits until every pod has an event after since that satisfies
// cond and returns, per pod, that event's time minus start(name).
func (w *workload) latencies(what string, since time.Time, start func(string) time.Time, cond func(event) bool) []time.Duration {
	w.t.Helper()
	out := make([]time.Duration, 0, w.n)
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, w.limit, true,
		func(context.Context) (bool, error) {
			out = out[:0]
			for _, name := range w.names() {
				at, ok := w.rec.first(w.mirror(name), since, cond)
				if !ok {
					return false, nil
				}
				out = append(out, at.Sub(start(name)))
			}
			return true, nil
		})
	if err != nil {
		w.t.Fatalf("%s: %d of %d pods done within %s", what, len(out), w.n, w.limit)
	}
	w.stepEnd = w.current()
	return out
}

// fileStamp is the fsnotify stamp of name's manifest.
func (w *workload) fileStamp(name string) time.Time {
	at, ok := w.rec.stamp(name + ".yaml")
	if !ok {
		w.t.Fatalf("no fsnotify stamp for %s.yaml", name)
	}
	return at
}

// create: manifests written → mirror exists and → mirror Running.
func (w *workload) create() {
	if w.profile != "" {
		stop := startProfile(w.t, w.profile)
		defer stop()
		// Where the goroutines wait, 2 s into the step.
		timer := time.AfterFunc(2*time.Second, func() { writeGoroutines(w.profile + ".goroutines") })
		defer timer.Stop()
	}
	cpu0, _, err := w.tg.usage()
	if err != nil {
		w.t.Fatal(err)
	}
	since := time.Now()
	end := w.phase(phaseCreate)
	w.writeAll(nil)
	w.res.add("manifest written → mirror exists", w.latencies("mirror exists", since, w.fileStamp, exists))
	w.res.add("manifest written → mirror Running", w.latencies("mirror Running", since, w.fileStamp, ready))
	end()
	// CPU used by mirrorlet in the create step, against its wall time:
	// computing, or waiting (on the API server, the runtime, or a core).
	cpu1, _, err := w.tg.usage()
	if err != nil {
		w.t.Fatal(err)
	}
	w.res.createCPU, w.res.createWall = cpu1-cpu0, time.Since(since)
}

// steady measures requests, CPU and RSS over the quiet window.
func (w *workload) steady() {
	req0, err := w.tg.requests()
	if err != nil {
		w.t.Fatal(err)
	}
	cpu0, _, err := w.tg.usage()
	if err != nil {
		w.t.Fatal(err)
	}
	since := time.Now()
	end := w.phase(phaseQuiet)
	<-time.After(w.quiet)
	end()
	req1, err := w.tg.requests()
	if err != nil {
		w.t.Fatal(err)
	}
	cpu1, rss, err := w.tg.usage()
	if err != nil {
		w.t.Fatal(err)
	}
	perMin := time.Minute.Seconds() / time.Since(since).Seconds()
	w.res.steady = delta(req0, req1, perMin)
	w.res.cpuPerMin = (cpu1 - cpu0).Seconds() * perMin
	w.res.rss = rss
	w.res.window = w.quiet
}

// delta returns (b - a) × scale by key, without the keys that did not move.
func delta(a, b map[string]float64, scale float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out[k] = d * scale
		}
	}
	return out
}

// podWrites sums the writes to pods in counts.
func podWrites(counts map[string]float64) float64 {
	sum := 0.0
	for k, v := range counts {
		verb, res, _ := strings.Cut(k, " ")
		if strings.HasPrefix(res, "pods") && isWrite(verb) {
			sum += v
		}
	}
	return sum
}

func isWrite(verb string) bool {
	return slices.Contains([]string{"create", "update", "patch", "delete", "deletecollection"}, verb)
}

// current returns the last event of every mirror (nil when deleted).
func (w *workload) current() map[string]*corev1.Pod {
	w.rec.mu.Lock()
	defer w.rec.mu.Unlock()
	out := map[string]*corev1.Pod{}
	for _, ev := range w.rec.events {
		if ev.typ == watch.Deleted {
			out[ev.name] = nil
		} else {
			out[ev.name] = ev.pod
		}
	}
	return out
}

// containers returns the container IDs and restart counts of a mirror.
func containers(p *corev1.Pod) (ids []string, restarts int32) {
	if p == nil {
		return nil, 0
	}
	for _, c := range p.Status.ContainerStatuses {
		ids = append(ids, c.ContainerID)
		restarts += c.RestartCount
	}
	return ids, restarts
}

// labelEdit: a label added to every manifest → on the mirrors, with the
// same mirror UIDs, container IDs and restart counts.
func (w *workload) labelEdit() {
	before := w.current()
	since := time.Now()
	w.writeAll(map[string]string{"bench-edit": "1"})
	w.res.add("label edit → on the mirror", w.latencies("label on the mirror", since, w.fileStamp, func(ev event) bool {
		return exists(ev) && ev.pod.Labels["bench-edit"] == "1"
	}))
	after := w.current()
	recreated, restarted := 0, 0
	for _, name := range w.names() {
		b, a := before[w.mirror(name)], after[w.mirror(name)]
		if a == nil || b == nil || a.UID != b.UID {
			recreated++
			continue
		}
		idsB, rB := containers(b)
		idsA, rA := containers(a)
		if !slices.Equal(idsB, idsA) || rA != rB {
			restarted++
		}
	}
	w.res.note("label edit: mirrors recreated %d, containers restarted %d (container IDs and restartCount compared)", recreated, restarted)
	w.res.labelRestarts = recreated + restarted
}

// deleteAll deletes every mirror (grace nil: the pod's own) from 8 clients
// at once and measures delete call → a new mirror (new UID) Running. The
// mirrors deleted are the API server's, once the harness's watch has
// delivered them (settled): each is deleted with its UID as precondition,
// so a delete can only miss if a mirror was replaced between that read and
// the call, which the harness reports as mirrorlet's (see replaced).
func (w *workload) deleteAll(what string, grace *int64) {
	olds := w.settled(what)
	end := w.phase(map[bool]string{true: phaseGraceful, false: phaseForced}[grace == nil])
	defer end()
	issued := sync.Map{}
	since := time.Now()
	var wg sync.WaitGroup
	work := make(chan string)
	for range 8 {
		wg.Go(func() {
			for name := range work {
				issued.Store(name, time.Now())
				if err := w.deleteMirror(olds[w.mirror(name)], grace); err != nil {
					w.t.Error(err)
				}
			}
		})
	}
	for _, name := range w.names() {
		work <- name
	}
	close(work)
	wg.Wait()
	start := func(name string) time.Time { at, _ := issued.Load(name); return at.(time.Time) }
	w.res.add(what, w.latencies(what, since, start, func(ev event) bool {
		old := olds[w.mirror(ev.name)]
		return ready(ev) && (old == nil || ev.pod.UID != old.UID)
	}))
}

// deleteMirror deletes m if it is still that very mirror (UID
// precondition). A refusal means someone replaced it since the harness
// read it: nothing but mirrorlet writes mirrors here, so the error names
// the mirror now in its place and the harness's events of that name.
func (w *workload) deleteMirror(m *corev1.Pod, grace *int64) error {
	err := w.cs.CoreV1().Pods("default").Delete(context.Background(), m.Name,
		metav1.DeleteOptions{GracePeriodSeconds: grace, Preconditions: &metav1.Preconditions{UID: &m.UID}})
	if !apierrors.IsConflict(err) {
		return err
	}
	now, gerr := w.cs.CoreV1().Pods("default").Get(context.Background(), m.Name, metav1.GetOptions{})
	if gerr != nil {
		return fmt.Errorf("deleting %s (uid %s): %w; reading it again: %w", m.Name, m.UID, err, gerr)
	}
	return fmt.Errorf("deleting %s: %w: mirror %s (resourceVersion %s) was replaced by %s, created %s, "+
		"since the harness read it; the harness's events of it: %s",
		m.Name, err, m.UID, m.ResourceVersion, now.UID, now.CreationTimestamp.UTC().Format(time.StampMilli), w.rec.history(m.Name))
}

// settled returns every mirror of the node as the API server has it now
// (a list: a consistent read), once the harness's watch has delivered
// those very versions, so that a step starts from what is in the API and
// its own events follow them. A mirror whose UID is not the one the last
// step ended with was replaced with nothing deleting it (that step ended
// with every mirror in place): an error, mirrorlet's, since it should
// create each mirror once per delete (issue 12: "one create, never two
// mirrors").
func (w *workload) settled(step string) map[string]*corev1.Pod {
	w.t.Helper()
	list, err := w.cs.CoreV1().Pods("default").List(context.Background(),
		metav1.ListOptions{FieldSelector: "spec.nodeName=" + w.tg.node()})
	if err != nil {
		w.t.Fatalf("%s: listing mirrors: %v", step, err)
	}
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true,
		func(context.Context) (bool, error) { return w.rec.has(list.Items), nil })
	if err != nil {
		w.t.Fatalf("%s: the harness's watch did not deliver the mirrors listed at resourceVersion %s within 1m", step, list.ResourceVersion)
	}
	out := map[string]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		out[p.Name] = p
		if s := w.stepEnd[p.Name]; s != nil && s.UID != p.UID {
			w.t.Errorf("%s: mirror %s replaced since the last step ended, with nothing deleting it: uid %s → %s; events: %s",
				step, p.Name, s.UID, p.UID, w.rec.history(p.Name))
		}
	}
	return out
}

// restart restarts mirrorlet with every pod and mirror in place and counts
// the API writes it makes in its first window.
func (w *workload) restart() {
	req0, err := w.tg.requests()
	if err != nil {
		w.t.Fatal(err)
	}
	start := time.Now()
	w.tg.restart(w.t)
	w.res.restartReady = time.Since(start)
	<-time.After(10 * time.Second) // the window in which writes are counted
	req1, err := w.tg.requests()
	if err != nil {
		w.t.Fatal(err)
	}
	w.res.restartWrites = map[string]float64{}
	for k, v := range delta(req0, req1, 1) {
		if verb, _, _ := strings.Cut(k, " "); isWrite(verb) {
			w.res.restartWrites[k] = v
		}
	}
}

// cleanup removes every manifest and waits until every mirror is gone.
func (w *workload) cleanup() {
	for _, name := range w.names() {
		_ = os.Remove(filepath.Join(w.tg.dir(), name+".yaml"))
	}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 3*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			pods, err := w.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + w.tg.node()})
			return err == nil && len(pods.Items) == 0 && (w.drained == nil || w.drained()), nil
		})
	if err != nil {
		w.t.Errorf("mirrors of %s not gone: %v", w.tg.node(), err)
	}
}

// run runs every step.
func (w *workload) run() {
	w.create()
	w.steady()
	w.labelEdit()
	w.deleteAll("mirror deleted gracefully → back Running", nil)
	w.deleteAll("mirror force-deleted → back Running", ptrTo[int64](0))
	if w.criClient != nil {
		w.specEdit()
		w.crash()
	}
	w.restart()
	w.summariseProbes()
	w.cleanup()
}

// startProfile writes a CPU profile of the test process to file until
// the returned function is called.
func startProfile(t testing.TB, file string) func() {
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

// writeGoroutines writes the goroutine profile of the test process.
func writeGoroutines(file string) {
	f, err := os.Create(file)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	_ = pprof.Lookup("goroutine").WriteTo(f, 0)
}

func ptrTo[T any](v T) *T { return &v }

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := slices.Collect(maps.Keys(m))
	sort.Strings(keys)
	return keys
}
