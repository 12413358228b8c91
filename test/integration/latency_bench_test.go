package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// BenchmarkManifestWriteToMirror measures the time from writing a new
// manifest file to its mirror existing in the API server.
func BenchmarkManifestWriteToMirror(b *testing.B) {
	finePolling(b)
	a := startAgent(b, newNodeName("bench-write"), "", nil)
	a.write("warmup.yaml", podManifest("warmup", nil, "nginx:1.27"))
	a.waitMirror("warmup", nil)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("p%d", i)
		start := time.Now()
		a.write(name+".yaml", podManifest(name, nil, "nginx:1.27"))
		a.waitMirror(name, nil)
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/mirror")
}

// BenchmarkMirrorDeleteToRecreate measures the time from a forced delete of
// a mirror to its replacement existing.
func BenchmarkMirrorDeleteToRecreate(b *testing.B) {
	finePolling(b)
	a := startAgent(b, newNodeName("bench-delete"), "", nil)
	a.write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.waitMirror("web", isRunning)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := k8s.Delete(context.Background(), m, client.GracePeriodSeconds(0)); err != nil {
			b.Fatal(err)
		}
		old := m.UID
		m = a.waitMirror("web", func(p *corev1.Pod) bool { return p.UID != old })
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/recreate")
}

func finePolling(b *testing.B) {
	old := interval
	interval = 2 * time.Millisecond
	b.Cleanup(func() { interval = old })
}
