package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBootEtcdAndAPIServer measures the boot of an etcd-like static
// pod (it listens only after a delay) and an apiserver-like one (it exits
// at once when the etcd-like port does not answer), both with readiness
// probes, with and without mirrorlet.io/after on the apiserver-like pod:
// the time from writing both manifests to both mirrors Ready
// (ms-to-both-ready), and the crash restarts of the apiserver-like
// container (crash-restarts). Without ordering, the kubelet's restart
// back-off (10 s, doubling) decides when the apiserver-like pod comes up.
//
//	sudo make bench-e2e   # or: go test -run '^$' -bench BootEtcd -benchtime 1x ./test/e2e/
func BenchmarkBootEtcdAndAPIServer(b *testing.B) {
	for _, delay := range []time.Duration{5 * time.Second, 15 * time.Second} {
		for _, ordered := range []bool{false, true} {
			b.Run(fmt.Sprintf("etcd-listens-after=%s/ordered=%t", delay, ordered), func(b *testing.B) {
				n := startNode(b)
				bootPair(b, n, 0, false) // pulls both images, outside the measurement
				var total time.Duration
				var restarts int32
				for i := 0; i < b.N; i++ {
					b.StartTimer()
					took, r := bootPair(b, n, delay, ordered)
					b.StopTimer()
					b.Logf("etcd listens after %s, ordered=%t: both Ready after %s, %d crash restarts of the apiserver-like pod",
						delay, ordered, took.Round(10*time.Millisecond), r)
					total += took
					restarts += r
				}
				b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-both-ready")
				b.ReportMetric(float64(restarts)/float64(b.N), "crash-restarts")
			})
		}
	}
}

// bootPair writes the etcd-like and apiserver-like manifests, waits until
// both mirrors are Ready, and returns how long that took and how often the
// apiserver-like container restarted; then it removes both pods.
func bootPair(b *testing.B, n *node, delay time.Duration, ordered bool) (time.Duration, int32) {
	b.Helper()
	etcdPort, apiPort := freePort(b), freePort(b)
	after := ""
	if ordered {
		after = "etcd"
	}
	start := time.Now()
	n.writeManifest("etcd.yaml", etcdLikePod(etcdPort, delay))
	n.writeManifest("apiserver.yaml", apiserverLikePod(apiPort, etcdPort, after))
	eventually(b, 5*time.Minute, "both Ready", func() bool { return n.ready("etcd") && n.ready("apiserver") })
	took := time.Since(start)
	restarts := containerStatus(n.mirror("apiserver"), "apiserver").RestartCount
	for _, f := range []string{"etcd.yaml", "apiserver.yaml"} {
		if err := os.Remove(filepath.Join(n.manifests, f)); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, time.Minute, "both pods gone", func() bool {
		return len(n.runtimePods()) == 0 && n.mirror("etcd") == nil && n.mirror("apiserver") == nil
	})
	return took, restarts
}
