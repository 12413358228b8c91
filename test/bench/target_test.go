package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
	"github.com/mirrorlet/mirrorlet/test/agenttest"
)

// target is one mirrorlet the workload drives: only its manifest
// directory is written; the rest is read from the API server, from
// mirrorlet's own request counter and from /proc.
type target interface {
	node() string
	dir() string
	// requests returns mirrorlet's API requests so far by "verb resource".
	requests() (map[string]float64, error)
	// usage returns mirrorlet's CPU time so far and its RSS in bytes.
	usage() (time.Duration, uint64, error)
	// restart stops mirrorlet (not its pods) and starts it again, and
	// returns when it is ready (/readyz).
	restart(t testing.TB)
}

// manifest writes pod as file into dir atomically (write, then rename).
func manifest(dir, file string, pod *corev1.Pod) error {
	data, err := yaml.Marshal(pod)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+file+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, file))
}

// processTarget is the mirrorlet binary run as a process.
type processTarget struct {
	name, manifests, work string
	flags                 []string
	metricsAddr, healthz  string
	cmd                   *exec.Cmd
	exited                chan struct{}
}

func startProcess(t testing.TB, node, kubeconfig, endpoint string) *processTarget {
	t.Helper()
	work := t.TempDir()
	p := &processTarget{name: node, work: work, manifests: filepath.Join(work, "manifests"),
		metricsAddr: freeAddr(t), healthz: freeAddr(t)}
	if err := os.MkdirAll(p.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	p.flags = []string{"--kubeconfig", kubeconfig, "--node-name", node, "--pod-manifest-path", p.manifests,
		"--container-runtime-endpoint", endpoint, "--root-dir", filepath.Join(work, "root"),
		"--pod-logs-dir", filepath.Join(work, "logs"), "--port", "0",
		"--healthz-bind-address", p.healthz, "--metrics-bind-address", p.metricsAddr}
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *processTarget) start(t testing.TB) {
	t.Helper()
	logPath := filepath.Join(p.work, "mirrorlet.log")
	flags := p.flags
	if dir := os.Getenv("BENCH_LOGS"); dir != "" {
		// Kept after the run, every line (zap's production sampling off).
		logPath = filepath.Join(dir, p.name+".log")
		flags = append(slices.Clip(flags), "--zap-devel")
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(binary, flags...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); _ = logFile.Close(); close(exited) }(p.cmd, p.exited)
	waitReady(t, p.healthz)
}

func (p *processTarget) stop(t testing.TB) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("mirrorlet %s did not stop within 30s", p.name)
	}
	p.cmd = nil
}

func (p *processTarget) node() string { return p.name }
func (p *processTarget) dir() string  { return p.manifests }

func (p *processTarget) restart(t testing.TB) {
	p.stop(t)
	p.start(t)
}

func (p *processTarget) requests() (map[string]float64, error) {
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scraping metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	return parseRequests(resp.Body)
}

// parseRequests reads mirrorlet_api_requests_total from the text format.
func parseRequests(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "mirrorlet_api_requests_total{")
		if !ok {
			continue
		}
		labelText, value, _ := strings.Cut(line, "} ")
		labels := map[string]string{}
		for _, kv := range strings.Split(labelText, ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", sc.Text(), err)
		}
		out[requestKey(labels)] += n
	}
	return out, sc.Err()
}

func requestKey(labels map[string]string) string {
	key := labels["verb"] + " " + labels["resource"]
	if labels["subresource"] != "" {
		key += "/" + labels["subresource"]
	}
	return key
}

func (p *processTarget) usage() (time.Duration, uint64, error) { return procUsage(p.cmd.Process.Pid) }

// inProcessTarget is mirrorlet run in the test process (agenttest) with the
// fake runtime, which outlives restarts.
type inProcessTarget struct {
	t      testing.TB
	agent  *agenttest.Agent
	cfg    agenttest.Config
	health string
}

func startInProcess(t testing.TB, node string, cfg agenttest.Config) *inProcessTarget {
	t.Helper()
	if cfg.Runtime == nil {
		cfg.Runtime = fake.New(nil)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ip := &inProcessTarget{t: t, cfg: cfg, health: freeAddr(t)}
	ip.cfg.Options = append(ip.cfg.Options, func(o *app.Options) {
		// The binary's defaults, not agenttest's short test periods.
		o.ResyncPeriod, o.FileCheckFrequency, o.HealthzBindAddress = 0, 0, ip.health
	})
	ip.agent = agenttest.Start(t, node, ip.cfg)
	waitReady(t, ip.health)
	return ip
}

func (ip *inProcessTarget) node() string { return ip.agent.Node }
func (ip *inProcessTarget) dir() string  { return ip.agent.Dir }

func (ip *inProcessTarget) restart(t testing.TB) {
	ip.agent.Stop()
	ip.agent = agenttest.Start(t, ip.agent.Node, ip.cfg)
	waitReady(t, ip.health)
}

// requests reads the counter every in-process agent shares.
func (ip *inProcessTarget) requests() (map[string]float64, error) { return registryRequests() }

func (ip *inProcessTarget) usage() (time.Duration, uint64, error) { return procUsage(os.Getpid()) }

func registryRequests() (map[string]float64, error) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	for _, f := range families {
		if f.GetName() == "mirrorlet_api_requests_total" {
			return requestCounts(f), nil
		}
	}
	return map[string]float64{}, nil
}

func requestCounts(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		out[requestKey(labels)] += m.GetCounter().GetValue()
	}
	return out
}

// procUsage reads a process's CPU time (utime+stime) and RSS from /proc.
func procUsage(pid int) (time.Duration, uint64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	cpu := time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	var rss uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb * 1024
		}
	}
	return cpu, rss, sc.Err()
}

// waitReady waits until mirrorlet's /readyz answers 200 (a readiness gate,
// not a timing).
func waitReady(t testing.TB, addr string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 2*time.Minute, true,
		func(context.Context) (bool, error) {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false, nil //nolint:nilerr // not listening yet: poll again
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	if err != nil {
		t.Fatalf("mirrorlet at %s not ready: %v", addr, err)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
