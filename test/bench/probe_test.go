package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Another API client's view of mirrorlet's bursts (issue 12: "1,000 pods
// ... without starving other API clients, API Priority and Fairness as the
// guard"). A probe is a client with an identity of its own that makes a
// steady stream of small requests (GET one ConfigMap, LIST ConfigMaps by
// label, one at a time) while the workload runs; its latency per phase of
// the workload (create burst, quiet minute, ...) is the figure.

const (
	probeNamespace = "default"
	probeLabel     = "bench-probe"
	probeGroup     = "bench:probes" // RBAC: get and list ConfigMaps
	probeObjects   = 10
	// probeInterval is the time between two requests of a probe (GET and
	// LIST alternate): 20 requests/s, small next to the burst's thousands.
	probeInterval = 50 * time.Millisecond
)

// Probe identities. The service account lands in the FlowSchema
// service-accounts (priority level workload-low), as in-cluster workloads
// and operators do; the user in global-default, as a person with kubectl
// does. mirrorlet's own identity (group mirrorlet:nodes) lands in
// deploy/rbac's FlowSchema mirrorlet-nodes, priority level system, as the
// kubelets' (without it, global-default: the user's level).
var probeUsers = []struct {
	who  string
	user envtest.User
}{
	{"service account", envtest.User{Name: "system:serviceaccount:default:bench-probe",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:default", probeGroup}}},
	{"user", envtest.User{Name: "bench-probe-user", Groups: []string{probeGroup}}},
}

// apfMatch is the FlowSchema and priority level a client's requests land
// in, as the API server's response headers name them.
type apfMatch struct{ flowSchema, priorityLevel string }

func (m apfMatch) String() string {
	return fmt.Sprintf("FlowSchema %s, priority level %s", m.flowSchema, m.priorityLevel)
}

// probeSample is one request of a probe.
type probeSample struct {
	at     time.Time // sent
	op     string    // "GET" or "LIST"
	took   time.Duration
	failed bool
}

// apiProbe is one probe client and what it measured.
type apiProbe struct {
	who   string
	match apfMatch
	cs    kubernetes.Interface
	hdr   *apfHeaders
	mu    sync.Mutex
	taken []probeSample
}

// startProbes creates the probes' ConfigMaps and RBAC and starts every
// probe until the test ends.
func startProbes(t testing.TB) []*apiProbe {
	t.Helper()
	if err := probeObjectsAndRBAC(t.Context()); err != nil {
		t.Fatal(err)
	}
	names, err := apfNames(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var probes []*apiProbe
	for _, u := range probeUsers {
		p, err := newProbe(u.who, u.user, names)
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, p)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return probes
}

func newProbe(who string, u envtest.User, names map[string]string) (*apiProbe, error) {
	cfg, hdr, err := userConfig(u)
	if err != nil {
		return nil, err
	}
	cfg.QPS = -1 // one request at a time: no client-side limiter needed
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client of %s: %w", u.Name, err)
	}
	p := &apiProbe{who: who, cs: cs, hdr: hdr}
	if _, err := p.request(context.Background(), "GET"); err != nil {
		return nil, fmt.Errorf("first request of probe %s: %w", u.Name, err)
	}
	p.match = hdr.match(names)
	return p, nil
}

// run makes a request every probeInterval (GET and LIST alternating) until
// ctx ends; a request slower than the interval delays the next one, as it
// would for a client waiting on its answer.
func (p *apiProbe) run(ctx context.Context) {
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		op := []string{"GET", "LIST"}[i%2]
		at := time.Now()
		_, err := p.request(ctx, op)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.taken = append(p.taken, probeSample{at: at, op: op, took: time.Since(at), failed: err != nil})
		p.mu.Unlock()
	}
}

func (p *apiProbe) request(ctx context.Context, op string) (any, error) {
	cms := p.cs.CoreV1().ConfigMaps(probeNamespace)
	if op == "GET" {
		return cms.Get(ctx, probeLabel+"-0", metav1.GetOptions{})
	}
	return cms.List(ctx, metav1.ListOptions{LabelSelector: probeLabel + "=1"})
}

// samples returns op's requests sent in [from, to): their latencies (sorted)
// and how many failed.
func (p *apiProbe) samples(op string, from, to time.Time) ([]time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ds []time.Duration
	failed := 0
	for _, s := range p.taken {
		if s.op != op || s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		if s.failed {
			failed++
			continue
		}
		ds = append(ds, s.took)
	}
	slices.Sort(ds)
	return ds, failed
}

// probeObjectsAndRBAC creates the ConfigMaps the probes read and lets
// probeGroup get and list ConfigMaps (idempotent: every scenario with
// probes calls it).
func probeObjectsAndRBAC(ctx context.Context) error {
	for i := range probeObjects {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", probeLabel, i),
			Labels: map[string]string{probeLabel: "1"}}, Data: map[string]string{"i": fmt.Sprint(i)}}
		if _, err := admin.CoreV1().ConfigMaps(probeNamespace).Create(ctx, cm, metav1.CreateOptions{}); ignoreExists(err) != nil {
			return fmt.Errorf("creating configmap %s: %w", cm.Name, err)
		}
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: probeLabel}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}}}
	if _, err := admin.RbacV1().Roles(probeNamespace).Create(ctx, role, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("creating role %s: %w", role.Name, err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: probeLabel},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: probeLabel},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: probeGroup}}}
	if _, err := admin.RbacV1().RoleBindings(probeNamespace).Create(ctx, rb, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("creating rolebinding %s: %w", rb.Name, err)
	}
	return nil
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// apfHeaders records, from a client's responses, the FlowSchema and
// priority level UIDs the API server's Priority and Fairness put them in
// (X-Kubernetes-PF-* response headers) and how many were 429s.
type apfHeaders struct {
	mu                sync.Mutex
	flowSchema, level string
	tooManyRequests   int
}

func (h *apfHeaders) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if fs := resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID"); fs != "" {
			h.flowSchema, h.level = fs, resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			h.tooManyRequests++
		}
		return resp, nil
	})
}

// match names the FlowSchema and priority level of the last response.
func (h *apfHeaders) match(names map[string]string) apfMatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return apfMatch{flowSchema: names[h.flowSchema], priorityLevel: names[h.level]}
}

// rejected is how many responses were 429 (client-go retries them: the
// probe's latency includes the wait).
func (h *apfHeaders) rejected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tooManyRequests
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// userConfig is a rest.Config of a new client certificate for u whose
// responses' Priority and Fairness headers are recorded.
func userConfig(u envtest.User) (*rest.Config, *apfHeaders, error) {
	user, err := env.ControlPlane.AddUser(u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("adding user %s: %w", u.Name, err)
	}
	cfg := user.Config()
	hdr := &apfHeaders{}
	cfg.Wrap(hdr.wrap)
	return cfg, hdr, nil
}

// apfNames maps the UIDs of every FlowSchema and priority level to their
// names.
func apfNames(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	fss, err := admin.FlowcontrolV1().FlowSchemas().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing flowschemas: %w", err)
	}
	for _, fs := range fss.Items {
		out[string(fs.UID)] = fs.Name
	}
	pls, err := admin.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing priority levels: %w", err)
	}
	for _, pl := range pls.Items {
		out[string(pl.UID)] = pl.Name
	}
	return out, nil
}

// apfMatchOf is where u's requests land: one request (any answer, even a
// refusal, carries the headers: Priority and Fairness runs before
// authorization).
func apfMatchOf(ctx context.Context, u envtest.User) (apfMatch, error) {
	cfg, hdr, err := userConfig(u)
	if err != nil {
		return apfMatch{}, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return apfMatch{}, err
	}
	_, err = cs.CoreV1().Namespaces().Get(ctx, probeNamespace, metav1.GetOptions{})
	var status apierrors.APIStatus
	if err != nil && !errors.As(err, &status) {
		return apfMatch{}, fmt.Errorf("request as %s: %w", u.Name, err)
	}
	names, err := apfNames(ctx)
	if err != nil {
		return apfMatch{}, err
	}
	return hdr.match(names), nil
}

// apfCounts are the API server's Priority and Fairness counters of one
// FlowSchema and priority level (apiserver_flowcontrol_*).
type apfCounts struct {
	dispatched float64 // requests executed
	// Requests that waited in a queue more than 5 ms, 100 ms, 1 s before
	// executing (request_wait_duration_seconds; every request goes through
	// a queue, one dispatched at once waits microseconds).
	waited5ms, waited100, waited1s float64
	rejected                       float64 // requests refused (429): queue full, time-out in queue, concurrency limit
}

func (c apfCounts) minus(o apfCounts) apfCounts {
	return apfCounts{c.dispatched - o.dispatched, c.waited5ms - o.waited5ms, c.waited100 - o.waited100,
		c.waited1s - o.waited1s, c.rejected - o.rejected}
}

// apfSnapshot is the counters of every FlowSchema and priority level, and
// the nominal seats of every priority level.
type apfSnapshot struct {
	counts map[apfMatch]apfCounts
	seats  map[string]float64
}

// scrapeAPF reads the API server's /metrics (as admin).
func scrapeAPF(ctx context.Context) (apfSnapshot, error) {
	data, err := admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apfSnapshot{}, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	return parseAPF(string(data)), nil
}

// parseAPF picks the Priority and Fairness counters from the text format.
func parseAPF(text string) apfSnapshot {
	snap := apfSnapshot{counts: map[apfMatch]apfCounts{}, seats: map[string]float64{}}
	for _, line := range strings.Split(text, "\n") {
		name, labels, value, ok := promLine(line)
		if !ok || !strings.HasPrefix(name, "apiserver_flowcontrol_") {
			continue
		}
		m := apfMatch{flowSchema: labels["flow_schema"], priorityLevel: labels["priority_level"]}
		c := snap.counts[m]
		switch {
		case name == "apiserver_flowcontrol_dispatched_requests_total":
			c.dispatched += value
		case name == "apiserver_flowcontrol_rejected_requests_total":
			c.rejected += value
		case name == "apiserver_flowcontrol_request_wait_duration_seconds_count" && labels["execute"] == "true":
			c.waited5ms += value
			c.waited100 += value
			c.waited1s += value
		case name == "apiserver_flowcontrol_request_wait_duration_seconds_bucket" && labels["execute"] == "true":
			switch labels["le"] {
			case "0.005":
				c.waited5ms -= value
			case "0.1":
				c.waited100 -= value
			case "1":
				c.waited1s -= value
			}
		case name == "apiserver_flowcontrol_nominal_limit_seats":
			snap.seats[labels["priority_level"]] = value
			continue
		default:
			continue
		}
		snap.counts[m] = c
	}
	return snap
}

// promLine splits one sample line of the Prometheus text format:
// name{k="v",...} value.
func promLine(line string) (name string, labels map[string]string, value float64, ok bool) {
	if line == "" || line[0] == '#' {
		return "", nil, 0, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	head := line[:sp]
	labels = map[string]string{}
	name, rest, hasLabels := strings.Cut(head, "{")
	if hasLabels {
		for _, kv := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
	}
	return name, labels, v, true
}

// Phases of the workload in which the probes' latencies are reported.
const (
	phaseCreate   = "create burst"
	phaseQuiet    = "quiet minute"
	phaseGraceful = "graceful delete burst"
	phaseForced   = "forced delete burst"
)

// phase is a span of the workload, with the Priority and Fairness counters
// of mirrorlet's FlowSchema and priority level over it.
type phase struct {
	name     string
	from, to time.Time
	apf      apfCounts
	apfOK    bool
}

// probeRow is one probe's latencies in one phase.
type probeRow struct {
	who       string
	match     apfMatch
	phase     string
	get, list []time.Duration // sorted
	failed    int
}

// phase starts phase name and returns the function that ends it.
func (w *workload) phase(name string) func() {
	if w.probes == nil {
		return func() {}
	}
	from := time.Now()
	before, err := scrapeAPF(context.Background())
	return func() {
		p := phase{name: name, from: from, to: time.Now()}
		after, err2 := scrapeAPF(context.Background())
		if err == nil && err2 == nil {
			p.apf, p.apfOK = after.counts[w.res.apf].minus(before.counts[w.res.apf]), true
			w.res.seats = after.seats
		} else {
			w.t.Logf("phase %s: Priority and Fairness counters not read: %v %v", name, err, err2)
		}
		w.res.phases = append(w.res.phases, p)
	}
}

// summariseProbes turns the probes' requests into a row per probe and
// phase.
func (w *workload) summariseProbes() {
	for _, p := range w.probes {
		for _, ph := range w.res.phases {
			get, f1 := p.samples("GET", ph.from, ph.to)
			list, f2 := p.samples("LIST", ph.from, ph.to)
			w.res.probes = append(w.res.probes, probeRow{who: p.who, match: p.match, phase: ph.name,
				get: get, list: list, failed: f1 + f2})
		}
		if n := p.hdr.rejected(); n > 0 {
			w.res.note("other API client (%s): %d answers 429 (retried by client-go; in its latency)", p.who, n)
		}
	}
}

// sameLevel is how many of the probes' requests in phase ph fall in match
// (the FlowSchema and priority level of mirrorlet), to tell them from
// mirrorlet's in the API server's counters.
func (s *scenario) sameLevel(ph string, match apfMatch) int {
	n := 0
	for _, r := range s.probes {
		if r.phase == ph && r.match == match {
			n += len(r.get) + len(r.list) + r.failed
		}
	}
	return n
}

// dist is p50 / p99 / max of sorted ds.
func dist(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	return fmt.Sprintf("%s / %s / %s", ms(quantile(ds, 0.5)), ms(quantile(ds, 0.99)), ms(ds[len(ds)-1]))
}

// probesMarkdown is the other clients' latencies per phase, and the
// Priority and Fairness counters of mirrorlet's requests.
func (s *scenario) probesMarkdown() string {
	if len(s.probes) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nOther API clients during %s (one request every %s, GET and LIST alternating; mirrorlet: %s):\n\n",
		s.name, probeInterval, s.apf)
	b.WriteString("| other client (where its requests land) | phase | GET ConfigMap p50 / p99 / max | LIST ConfigMaps by label p50 / p99 / max | requests (failed) |\n|---|---|---|---|---|\n")
	for _, r := range s.probes {
		fmt.Fprintf(&b, "| %s (%s) | %s | %s | %s | %d (%d) |\n", r.who, r.match, r.phase, dist(r.get), dist(r.list),
			len(r.get)+len(r.list)+r.failed, r.failed)
	}
	fmt.Fprintf(&b, "\n| phase | API Priority and Fairness, %s (nominal seats %.0f): requests dispatched | waited in queue > 5 ms | > 100 ms | > 1 s | rejected (429) |\n|---|---|---|---|---|---|\n",
		s.apf, s.seats[s.apf.priorityLevel])
	for _, ph := range s.phases {
		if !ph.apfOK {
			continue
		}
		c := ph.apf
		fmt.Fprintf(&b, "| %s (%s) | %.0f (%d of them the probe's) | %.0f | %.0f | %.0f | %.0f |\n", ph.name, ph.to.Sub(ph.from).Round(100*time.Millisecond),
			c.dispatched, s.sameLevel(ph.name, s.apf), c.waited5ms, c.waited100, c.waited1s, c.rejected)
	}
	return b.String()
}
