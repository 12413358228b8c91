package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/config"
)

// What every scenario shares; set up once in TestMain.
var (
	env      *envtest.Environment
	admin    *kubernetes.Clientset
	reader   client.Client
	binary   string
	workDir  string
	enabled  = os.Getenv("MIRRORLET_BENCH") == "1"
	defaults = config.Default()
)

func TestMain(m *testing.M) {
	if !enabled {
		fmt.Fprintln(os.Stderr, "test/bench: set MIRRORLET_BENCH=1 (make bench) to run the benchmark")
		os.Exit(m.Run())
	}
	os.Exit(setUp(m))
}

func setUp(m *testing.M) int {
	// Each in-process agent logs through its own logger (agenttest).
	ctrl.SetLogger(logr.Discard())
	var err error
	if workDir, err = os.MkdirTemp("/tmp", "ml-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(workDir) }()
	env = &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if err := setUpCluster(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binary = filepath.Join(workDir, "mirrorlet")
	if out, err := exec.Command("go", "build", "-o", binary, "github.com/mirrorlet/mirrorlet/cmd/mirrorlet").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mirrorlet: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// setUpCluster makes the admin clients and applies mirrorlet's RBAC and
// admission policies, as a cluster admin installs them.
func setUpCluster(cfg *rest.Config) error {
	var err error
	if admin, err = kubernetes.NewForConfig(rest.CopyConfig(cfg)); err != nil {
		return err
	}
	if reader, err = client.New(cfg, client.Options{}); err != nil {
		return err
	}
	kc, err := userKubeconfig(envtest.User{Name: "admin", Groups: []string{"system:masters"}})
	if err != nil {
		return err
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	for _, dir := range []string{"deploy/rbac", "deploy/admission"} {
		out, err := exec.Command(kubectl, "--kubeconfig", kc, "apply", "-f", filepath.Join("..", "..", dir)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("applying %s: %w\n%s", dir, err, out)
		}
	}
	return nil
}

// nodeUser is the identity of node's agent (deploy/rbac).
func nodeUser(node string) envtest.User {
	return envtest.User{Name: "mirrorlet:node:" + node, Groups: []string{"mirrorlet:nodes"}}
}

// userKubeconfig writes a kubeconfig of a new client certificate for u.
func userKubeconfig(u envtest.User) (string, error) {
	user, err := env.ControlPlane.AddUser(u, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(workDir, strings.ReplaceAll(u.Name, ":", "_")+".kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// nodeConfig is node's identity as a rest.Config with mirrorlet's default
// client QPS and burst.
func nodeConfig(t testing.TB, node string) *rest.Config {
	t.Helper()
	user, err := env.ControlPlane.AddUser(nodeUser(node), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := user.Config()
	cfg.QPS, cfg.Burst = *defaults.KubeAPIQPS, int(*defaults.KubeAPIBurst)
	return cfg
}

// hostPod is a hostNetwork static pod running image.
func hostPod(image string) func(string, map[string]string) *corev1.Pod {
	return func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{
				Name: "main", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
			}}},
		}
	}
}

// TestBench runs every scenario and writes RESULTS.md.
func TestBench(t *testing.T) {
	if !enabled {
		t.Skip("MIRRORLET_BENCH=1 runs the benchmark (make bench)")
	}
	rep := &report{started: time.Now()}
	if only := os.Getenv("BENCH_ONLY"); only != "" {
		rep.only = only
	}
	rep.run(t, "containerd-1", func(t *testing.T) { rep.containerd(t, 1) })
	rep.run(t, "containerd-50", func(t *testing.T) { rep.containerd(t, 50) })
	rep.run(t, "fake-1000", func(t *testing.T) { rep.fakeCRI(t, 1000) })
	// In-process, for CPU profiles of mirrorlet's code (BENCH_PROFILE) only.
	for _, n := range []int{50, 1000} {
		if name := fmt.Sprintf("inprocess-%d", n); strings.Contains(rep.only, name) {
			rep.run(t, name, func(t *testing.T) { rep.fake(t, n) })
		}
	}
	rep.run(t, "fleet-100x10", func(t *testing.T) {
		agents, note := fleetSize(t, 100)
		rep.fleet(t, agents, (1000+agents-1)/agents, note)
	})
	rep.write(t)
}

// run runs one scenario unless BENCH_ONLY names others.
func (r *report) run(t *testing.T, name string, f func(*testing.T)) {
	if r.only != "" && !strings.Contains(","+r.only+",", ","+name+",") {
		return
	}
	t.Run(name, f)
}

// observe starts a recorder on node's mirrors and on dir.
func observe(t testing.TB, node, dir string) *recorder {
	t.Helper()
	rec := newRecorder()
	if err := rec.watchPods(t.Context(), admin, node); err != nil {
		t.Fatal(err)
	}
	if err := rec.watchDir(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	return rec
}

// containerd runs the workload for n pods on a private containerd with the
// mirrorlet binary (root only).
func (r *report) containerd(t *testing.T, n int) {
	if os.Geteuid() != 0 {
		r.skipped = append(r.skipped, fmt.Sprintf("containerd N=%d: needs root", n))
		t.Skip("containerd needs root")
	}
	ctd := startContainerd(t)
	node := fmt.Sprintf("bench-ctd-%d", n)
	kc, err := userKubeconfig(nodeUser(node))
	if err != nil {
		t.Fatal(err)
	}
	tg := startProcess(t, node, kc, ctd.endpoint)
	rec := observe(t, node, tg.dir())
	pod, ports := webPods(t, ctd.image, n)
	w := &workload{t: t, tg: tg, cs: admin, rec: rec, n: n, pod: pod, quiet: 30 * time.Second, limit: 3 * time.Minute,
		res:   &scenario{name: fmt.Sprintf("%d pods, containerd, binary", n), n: n},
		ports: ports, criClient: criClient(t, ctd.endpoint)}
	w.drained = ctd.drained
	warmUp(w)
	r.scenarios = append(r.scenarios, w.res)
	w.run()
}

// warmUp runs one pod so that the image is present, then removes it.
func warmUp(w *workload) {
	real := w.n
	w.n = 1
	defer func() { w.n = real }()
	since := time.Now()
	if err := manifest(w.tg.dir(), "bench-0000.yaml", w.pod("bench-0000", nil)); err != nil {
		w.t.Fatal(err)
	}
	w.latencies("warm-up pod Running", since, func(string) time.Time { return since }, ready)
	w.cleanup()
}

// fakeCRI runs the workload for n pods with the mirrorlet binary against
// a fake CRI runtime served by the test process: CPU and RSS are
// mirrorlet's own.
func (r *report) fakeCRI(t *testing.T, n int) {
	cri := startFakeCRI(t)
	node := fmt.Sprintf("bench-fake-%d", n)
	kc, err := userKubeconfig(nodeUser(node))
	if err != nil {
		t.Fatal(err)
	}
	tg := startProcess(t, node, kc, cri.endpoint)
	rec := observe(t, node, tg.dir())
	w := &workload{t: t, tg: tg, cs: admin, rec: rec, n: n, pod: hostPod("registry.invalid/bench/pause:v1"),
		quiet: 60 * time.Second, limit: 5 * time.Minute, drained: cri.drained,
		res: &scenario{name: fmt.Sprintf("%d pods, fake CRI server, binary", n), n: n}}
	// Other API clients, and where mirrorlet's own requests land at the
	// API server's Priority and Fairness.
	w.probes = startProbes(t)
	if w.res.apf, err = apfMatchOf(t.Context(), nodeUser(node)); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("BENCH_PROFILE"); dir != "" {
		// The test process here is the fake CRI server and the harness:
		// its profile shows whether they, not mirrorlet, bound a step.
		w.profile = filepath.Join(dir, fmt.Sprintf("cpu-harness-fakecri-%d.pprof", n))
	}
	r.scenarios = append(r.scenarios, w.res)
	w.run()
}

// fake runs the workload for n pods with the fake runtime, in-process
// (BENCH_ONLY=inprocess-N; with BENCH_PROFILE=DIR, a CPU profile of the
// create step).
func (r *report) fake(t *testing.T, n int) {
	node := fmt.Sprintf("bench-fake-%d", n)
	tg := startInProcess(t, node, agentConfig(t, node))
	rec := observe(t, node, tg.dir())
	w := &workload{t: t, tg: tg, cs: admin, rec: rec, n: n, pod: hostPod("registry.invalid/bench/pause:v1"),
		quiet: 60 * time.Second, limit: 5 * time.Minute,
		res: &scenario{name: fmt.Sprintf("%d pods, fake runtime, in-process", n), n: n, inProcess: true}}
	if dir := os.Getenv("BENCH_PROFILE"); dir != "" {
		w.profile = filepath.Join(dir, fmt.Sprintf("cpu-fake-%d.pprof", n))
	}
	r.scenarios = append(r.scenarios, w.res)
	w.run()
}
