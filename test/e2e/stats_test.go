package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/mirrorlet/mirrorlet/nodeapi/stats"
)

// TestStatsSummary reads /stats/summary and /metrics/resource for a busy
// static pod on the real containerd: the pod is named by its mirror, and
// its container, the pod and the node have non-zero CPU (cumulative and a
// rate) and memory.
func TestStatsSummary(t *testing.T) {
	n := startNode(t)
	port := freePort(t)
	n.writeManifest("static-web.yaml", webPod("static-web", port))
	n.waitRunning("static-web", 2*time.Minute)
	p, err := stats.New(stats.Config{Runtime: nodeRuntime, NodeName: n.name})
	if err != nil {
		t.Fatal(err)
	}
	h := p.Handlers()
	mux := http.NewServeMux()
	mux.Handle("/stats/summary", h.Summary)
	mux.Handle("/metrics/resource", h.ResourceMetrics)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)

	mirror := n.mirrorName("static-web")
	var pod *statsapi.PodStats
	eventually(t, time.Minute, "non-zero CPU and memory of "+mirror+" in /stats/summary", func() bool {
		// Keep the server busy so that its CPU rate is above zero.
		for range 20 {
			_, _ = get(port, "/busy")
		}
		s, _ := readSummary(t, srv)
		pod = findPodStats(s, mirror)
		return s.Node.NodeName == n.name && nonZeroCPU(s.Node.CPU) && nonZeroMemory(s.Node.Memory) &&
			pod != nil && len(pod.Containers) == 1 && pod.Containers[0].Name == "web" &&
			nonZeroCPU(pod.Containers[0].CPU) && nonZeroMemory(pod.Containers[0].Memory) &&
			nonZeroCPU(pod.CPU) && nonZeroMemory(pod.Memory)
	})
	// The UID is the static pod's, as the kubelet reports it for a static
	// pod: the mirror's kubernetes.io/config.mirror.
	if uid := n.mirror("static-web").Annotations["kubernetes.io/config.mirror"]; pod.PodRef.Namespace != "default" || pod.PodRef.UID != uid {
		t.Errorf("pod ref %+v; want namespace default and UID %s", pod.PodRef, uid)
	}
	t.Logf("pod stats: cpu %d nanocores, %d ns; memory working set %d", *pod.CPU.UsageNanoCores, *pod.CPU.UsageCoreNanoSeconds, *pod.Memory.WorkingSetBytes)

	metrics := readMetrics(t, srv)
	for _, want := range []string{
		fmt.Sprintf(`container_cpu_usage_seconds_total{container="web",namespace="default",pod=%q}`, mirror),
		fmt.Sprintf(`container_memory_working_set_bytes{container="web",namespace="default",pod=%q}`, mirror),
		fmt.Sprintf(`container_start_time_seconds{container="web",namespace="default",pod=%q}`, mirror),
		fmt.Sprintf(`pod_cpu_usage_seconds_total{namespace="default",pod=%q}`, mirror),
		fmt.Sprintf(`pod_memory_working_set_bytes{namespace="default",pod=%q}`, mirror),
		"node_cpu_usage_seconds_total ", "node_memory_working_set_bytes ", "scrape_error 0", "resource_scrape_error 0",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics/resource lacks %s:\n%s", want, metrics)
		}
	}
}

func readSummary(t *testing.T, srv *httptest.Server) (*statsapi.Summary, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/stats/summary")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/stats/summary: %d %s", resp.StatusCode, body)
	}
	var s statsapi.Summary
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("decoding the summary: %v\n%s", err, body)
	}
	return &s, string(body)
}

func readMetrics(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/metrics/resource")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics/resource: %d %s", resp.StatusCode, body)
	}
	return string(body)
}

func findPodStats(s *statsapi.Summary, name string) *statsapi.PodStats {
	for i := range s.Pods {
		if s.Pods[i].PodRef.Name == name {
			return &s.Pods[i]
		}
	}
	return nil
}

func nonZeroCPU(c *statsapi.CPUStats) bool {
	return c != nil && c.UsageCoreNanoSeconds != nil && *c.UsageCoreNanoSeconds > 0 &&
		c.UsageNanoCores != nil && *c.UsageNanoCores > 0 && !c.Time.IsZero()
}

func nonZeroMemory(m *statsapi.MemoryStats) bool {
	return m != nil && m.WorkingSetBytes != nil && *m.WorkingSetBytes > 0 && m.UsageBytes != nil && *m.UsageBytes > 0
}
