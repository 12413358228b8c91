package stats

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// fakeRuntime serves fixed pods and a settable sample per container.
type fakeRuntime struct {
	pods      []mruntime.Pod
	stats     []mruntime.ContainerStats
	sandboxes []mruntime.SandboxStats
	sbErr     error
	sbCalls   int
}

func (f *fakeRuntime) ListPods(context.Context) ([]mruntime.Pod, error) { return f.pods, nil }
func (f *fakeRuntime) ListContainerStats(context.Context) ([]mruntime.ContainerStats, error) {
	return f.stats, nil
}
func (f *fakeRuntime) ListPodSandboxStats(context.Context) ([]mruntime.SandboxStats, error) {
	f.sbCalls++
	return f.sandboxes, f.sbErr
}

func u64(v uint64) *uint64 { return &v }

var t0 = time.Unix(1_700_000_000, 0)

func sample(id string, at time.Time, cpuNs, ws uint64) mruntime.ContainerStats {
	return mruntime.ContainerStats{ContainerID: id, Usage: mruntime.Usage{
		CPUTime: at, UsageCoreNanoSeconds: u64(cpuNs), MemoryTime: at, WorkingSetBytes: u64(ws), UsageBytes: u64(ws * 2)}}
}

func twoContainerPod() mruntime.Pod {
	return mruntime.Pod{UID: "uid1", Namespace: "ns", Name: "web-node", SandboxID: "sb1", Ready: true, CreatedAt: t0,
		Containers: []mruntime.Container{
			{ID: "a0", Name: "a", Attempt: 0, State: mruntime.ContainerExited},
			{ID: "a1", Name: "a", Attempt: 1, State: mruntime.ContainerRunning, CreatedAt: t0.Add(time.Second)},
			{ID: "b0", Name: "b", State: mruntime.ContainerRunning, CreatedAt: t0},
		}}
}

func procDir(t *testing.T) string {
	dir := t.TempDir()
	stat := "cpu  100 0 50 1000 10 0 0 0 0 0\ncpu0 100 0 50 1000 10 0 0 0 0 0\nbtime 1600000000\n"
	meminfo := "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    500 kB\nInactive(file):  100 kB\n"
	for name, data := range map[string]string{"stat": stat, "meminfo": meminfo} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSummaryRatesAndSums: no rate on the first sample, the rate between
// two samples after; the pod is the sum of its running containers when the
// runtime has no sandbox stats, and that is asked only once.
func TestSummaryRatesAndSums(t *testing.T) {
	other := twoContainerPod()
	other.Name, other.UID = "web-othernode", "uid2"
	rt := &fakeRuntime{pods: []mruntime.Pod{twoContainerPod(), other}, sbErr: fmt.Errorf("x: %w", mruntime.ErrUnimplemented)}
	p, err := New(Config{Runtime: rt, NodeName: "node", ProcDir: procDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	rt.stats = []mruntime.ContainerStats{sample("a1", t0, 1e9, 100), sample("b0", t0, 2e9, 50)}
	s, err := p.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pods) != 1 || len(s.Pods[0].Containers) != 2 {
		t.Fatalf("pods %+v; want one pod (not the other node's) with the two running containers", s.Pods)
	}
	pod := s.Pods[0]
	if pod.Containers[0].CPU.UsageNanoCores != nil || pod.CPU.UsageNanoCores != nil {
		t.Errorf("a rate on the first sample")
	}
	if *pod.CPU.UsageCoreNanoSeconds != 3e9 || *pod.Memory.WorkingSetBytes != 150 || *pod.Memory.UsageBytes != 300 {
		t.Errorf("pod figures %+v %+v; want the sums", *pod.CPU, *pod.Memory)
	}
	if pod.PodRef.Name != "web-node" || pod.PodRef.Namespace != "ns" || pod.PodRef.UID != "uid1" {
		t.Errorf("pod ref %+v", pod.PodRef)
	}
	// 10 s later: a used 5 s of CPU (0.5 core), b 1 s (0.1 core).
	rt.stats = []mruntime.ContainerStats{sample("a1", t0.Add(10*time.Second), 6e9, 100), sample("b0", t0.Add(10*time.Second), 3e9, 50)}
	if s, err = p.Summary(t.Context()); err != nil {
		t.Fatal(err)
	}
	pod = s.Pods[0]
	if got := *pod.Containers[0].CPU.UsageNanoCores; got != 5e8 {
		t.Errorf("container a: %d nanocores; want 5e8", got)
	}
	if got := *pod.CPU.UsageNanoCores; got != 6e8 {
		t.Errorf("pod: %d nanocores; want 6e8", got)
	}
	if rt.sbCalls != 1 {
		t.Errorf("ListPodSandboxStats called %d times; want once (unimplemented)", rt.sbCalls)
	}
	n := s.Node
	if *n.CPU.UsageCoreNanoSeconds != 150*1e7 || *n.Memory.UsageBytes != 800*1024 || *n.Memory.WorkingSetBytes != 700*1024 ||
		*n.Memory.AvailableBytes != 500*1024 || n.StartTime.Unix() != 1600000000 || n.NodeName != "node" {
		t.Errorf("node stats %+v %+v", *n.CPU, *n.Memory)
	}
}

// TestSummarySandboxStats: the runtime's sandbox figures, when it has
// them, are the pod's; a counter that goes back (a restarted container)
// gives no rate instead of a huge one.
func TestSummarySandboxStats(t *testing.T) {
	rt := &fakeRuntime{pods: []mruntime.Pod{twoContainerPod()}}
	p, err := New(Config{Runtime: rt, NodeName: "node", ProcDir: procDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	rt.stats = []mruntime.ContainerStats{sample("a1", t0, 5e9, 100)}
	rt.sandboxes = []mruntime.SandboxStats{{SandboxID: "sb1", Usage: sample("", t0, 9e9, 999).Usage}}
	if _, err := p.Summary(t.Context()); err != nil {
		t.Fatal(err)
	}
	rt.stats = []mruntime.ContainerStats{sample("a1", t0.Add(time.Second), 1e9, 100)}
	s, err := p.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pod := s.Pods[0]
	if *pod.Memory.WorkingSetBytes != 999 || *pod.CPU.UsageCoreNanoSeconds != 9e9 {
		t.Errorf("pod figures %+v; want the sandbox's", *pod.Memory)
	}
	if pod.Containers[0].CPU.UsageNanoCores != nil {
		t.Errorf("a rate across a counter reset: %d", *pod.Containers[0].CPU.UsageNanoCores)
	}
}

// TestResourceMetrics: the kubelet's names and labels, in text format.
func TestResourceMetrics(t *testing.T) {
	rt := &fakeRuntime{pods: []mruntime.Pod{twoContainerPod()}, sbErr: mruntime.ErrUnimplemented,
		stats: []mruntime.ContainerStats{sample("a1", t0, 1e9, 100), sample("b0", t0, 2e9, 50)}}
	p, err := New(Config{Runtime: rt, NodeName: "node", ProcDir: procDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.Handlers().ResourceMetrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics/resource", nil))
	body := rec.Body.String()
	ms := fmt.Sprint(t0.UnixMilli())
	for _, want := range []string{
		`container_cpu_usage_seconds_total{container="a",namespace="ns",pod="web-node"} 1 ` + ms,
		`container_memory_working_set_bytes{container="b",namespace="ns",pod="web-node"} 50 ` + ms,
		`container_start_time_seconds{container="a",namespace="ns",pod="web-node"} 1.700000001e+09`,
		`pod_cpu_usage_seconds_total{namespace="ns",pod="web-node"} 3 ` + ms,
		`pod_memory_working_set_bytes{namespace="ns",pod="web-node"} 150 ` + ms,
		"node_cpu_usage_seconds_total 1.5 ", "node_memory_working_set_bytes 716800 ",
		"scrape_error 0", "resource_scrape_error 0",
		"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in:\n%s", want, body)
		}
	}
	rec = httptest.NewRecorder()
	p.Handlers().Summary.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/stats/summary", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /stats/summary: %d; want 405", rec.Code)
	}
}
