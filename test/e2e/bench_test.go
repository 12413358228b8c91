package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// BenchmarkManifestToServing measures the time from writing N manifests
// into the manifest directory to every one of the N web servers answering
// on the node, with images already present (IfNotPresent). It reports
// ms-to-all-serving and, for N > 1, ms-to-first-serving.
//
//	sudo make bench-e2e
func BenchmarkManifestToServing(b *testing.B) {
	for _, pods := range []int{1, 50} {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			n := startNode(b)
			// Pull the image once, outside the measurement.
			warm := freePort(b)
			n.writeManifest("warm.yaml", webPod("warm", warm))
			n.waitRunning("warm", 2*time.Minute)
			if err := os.Remove(filepath.Join(n.manifests, "warm.yaml")); err != nil {
				b.Fatal(err)
			}
			eventually(b, time.Minute, "the warm-up pod to stop", func() bool { return len(n.runtimePods()) == 0 })

			var all, first time.Duration
			for i := 0; i < b.N; i++ {
				ports := make([]int, pods)
				for j := range ports {
					ports[j] = freePort(b)
				}
				b.StartTimer()
				start := time.Now()
				for j, port := range ports {
					n.writeManifest(fmt.Sprintf("web-%d.yaml", j), webPod(fmt.Sprintf("web-%d", j), port))
				}
				f, a := waitServing(b, ports, start)
				b.StopTimer()
				first += f
				all += a
				for j := range ports {
					_ = os.Remove(filepath.Join(n.manifests, fmt.Sprintf("web-%d.yaml", j)))
				}
				eventually(b, 5*time.Minute, "every pod to stop", func() bool { return len(n.runtimePods()) == 0 })
			}
			b.ReportMetric(float64(all.Milliseconds())/float64(b.N), "ms-to-all-serving")
			if pods > 1 {
				b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-to-first-serving")
			}
		})
	}
}

// waitServing polls every port until each answers and returns when the
// first and the last answered, since start.
func waitServing(b *testing.B, ports []int, start time.Time) (first, last time.Duration) {
	// Poll gently enough that the pollers do not steal the CPU the pods
	// need to start: 5 ms for one pod, up to 100 ms for many.
	interval := min(5*time.Millisecond*time.Duration(len(ports)), 100*time.Millisecond)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, port := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := wait.PollUntilContextTimeout(context.Background(), interval, 5*time.Minute, true,
				func(context.Context) (bool, error) {
					_, err := get(port, "/healthz")
					return err == nil, nil
				})
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				b.Errorf("port %d never answered", port)
			}
			if first == 0 || d < first {
				first = d
			}
			last = max(last, d)
		}()
	}
	wg.Wait()
	return first, last
}
