package stats

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// The kubelet's resource metrics (pkg/kubelet/metrics/collectors), with
// the same names, help texts and labels, since metrics-server reads them.
var (
	containerLabels = []string{"container", "pod", "namespace"}
	podLabels       = []string{"pod", "namespace"}

	nodeCPUDesc = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemoryDesc = prometheus.NewDesc("node_memory_working_set_bytes",
		"[STABLE] Current working set of the node in bytes", nil, nil)
	containerCPUDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the container in core-seconds", containerLabels, nil)
	containerMemoryDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"[STABLE] Current working set of the container in bytes", containerLabels, nil)
	containerStartDesc = prometheus.NewDesc("container_start_time_seconds",
		"[STABLE] Start time of the container since unix epoch in seconds", containerLabels, nil)
	podCPUDesc = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the pod in core-seconds", podLabels, nil)
	podMemoryDesc = prometheus.NewDesc("pod_memory_working_set_bytes",
		"[STABLE] Current working set of the pod in bytes", podLabels, nil)
	scrapeErrorDesc = prometheus.NewDesc("scrape_error",
		"[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
	resourceScrapeErrorDesc = prometheus.NewDesc("resource_scrape_error",
		"[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// serveResourceMetrics answers one scrape from a fresh Summary.
func (p *Provider) serveResourceMetrics(w http.ResponseWriter, r *http.Request) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{ctx: r.Context(), p: p})
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// collector turns one Summary into the resource metrics.
type collector struct {
	ctx context.Context
	p   *Provider
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPUDesc, nodeMemoryDesc, containerCPUDesc, containerMemoryDesc,
		containerStartDesc, podCPUDesc, podMemoryDesc, scrapeErrorDesc, resourceScrapeErrorDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.p.Summary(c.ctx)
	failed := 0.0
	if err != nil {
		c.p.cfg.Log.Error(err, "Computing the resource metrics")
		failed = 1
	} else {
		collectNode(ch, s.Node)
		for _, pod := range s.Pods {
			collectPod(ch, pod)
		}
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, failed)
	ch <- prometheus.MustNewConstMetric(resourceScrapeErrorDesc, prometheus.GaugeValue, failed)
}

func collectNode(ch chan<- prometheus.Metric, n statsapi.NodeStats) {
	cpu(ch, nodeCPUDesc, n.CPU)
	memory(ch, nodeMemoryDesc, n.Memory)
}

func collectPod(ch chan<- prometheus.Metric, pod statsapi.PodStats) {
	ref := pod.PodRef
	for _, c := range pod.Containers {
		if c.StartTime.Unix() > 0 {
			ch <- prometheus.MustNewConstMetric(containerStartDesc, prometheus.GaugeValue,
				float64(c.StartTime.UnixNano())/float64(time.Second), c.Name, ref.Name, ref.Namespace)
		}
		cpu(ch, containerCPUDesc, c.CPU, c.Name, ref.Name, ref.Namespace)
		memory(ch, containerMemoryDesc, c.Memory, c.Name, ref.Name, ref.Namespace)
	}
	cpu(ch, podCPUDesc, pod.CPU, ref.Name, ref.Namespace)
	memory(ch, podMemoryDesc, pod.Memory, ref.Name, ref.Namespace)
}

// cpu sends the cumulative CPU time in core-seconds, stamped with the
// sample's time as the kubelet does.
func cpu(ch chan<- prometheus.Metric, d *prometheus.Desc, s *statsapi.CPUStats, labels ...string) {
	if s == nil || s.UsageCoreNanoSeconds == nil {
		return
	}
	m := prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(*s.UsageCoreNanoSeconds)/float64(time.Second), labels...)
	ch <- prometheus.NewMetricWithTimestamp(s.Time.Time, m)
}

func memory(ch chan<- prometheus.Metric, d *prometheus.Desc, s *statsapi.MemoryStats, labels ...string) {
	if s == nil || s.WorkingSetBytes == nil {
		return
	}
	m := prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(*s.WorkingSetBytes), labels...)
	ch <- prometheus.NewMetricWithTimestamp(s.Time.Time, m)
}
