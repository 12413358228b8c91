package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/test/agenttest"
)

// BenchmarkManifestWriteToMirror measures the time from writing a new
// manifest file to its mirror existing in the API server.
func BenchmarkManifestWriteToMirror(b *testing.B) {
	finePolling(b)
	a := startAgent(b, newNodeName("bench-write"), "", nil)
	a.Write("warmup.yaml", podManifest("warmup", nil, "nginx:1.27"))
	a.WaitMirror("warmup", nil)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("p%d", i)
		start := time.Now()
		a.Write(name+".yaml", podManifest(name, nil, "nginx:1.27"))
		a.WaitMirror(name, nil)
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/mirror")
}

// BenchmarkMirrorDeleteToRecreate measures the time from a forced delete of
// a mirror to its replacement existing.
func BenchmarkMirrorDeleteToRecreate(b *testing.B) {
	finePolling(b)
	a := startAgent(b, newNodeName("bench-delete"), "", nil)
	a.Write("web.yaml", podManifest("web", nil, "nginx:1.27"))
	m := a.WaitMirror("web", isRunning)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := k8s.Delete(context.Background(), m, client.GracePeriodSeconds(0)); err != nil {
			b.Fatal(err)
		}
		old := m.UID
		m = a.WaitMirror("web", func(p *corev1.Pod) bool { return p.UID != old })
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/recreate")
}

func finePolling(b *testing.B) {
	old := agenttest.Interval
	agenttest.Interval = 2 * time.Millisecond
	b.Cleanup(func() { agenttest.Interval = old })
}
