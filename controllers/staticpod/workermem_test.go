package staticpod

import (
	"fmt"
	"io"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// A worker that logged keeps no logger: with mirrorlet's zap logger, one
// with the pod's key holds ~2.5 KB, which 1,000 idle workers would keep
// for nothing.
func TestWorkerKeepsNoLogger(t *testing.T) {
	f := newFixture(t, "")
	f.e.cfg.Log = zap.New(zap.WriteTo(io.Discard))
	const n = 1000
	workers := make([]*worker, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range workers {
		workers[i] = newWorker(f.e, types.NamespacedName{Namespace: "default", Name: fmt.Sprintf("p%d", i)})
		workers[i].logger().Info("Started pod sandbox", "sandbox", "s")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perWorker := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(workers)
	if perWorker > 1500 {
		t.Errorf("each worker holds %d bytes, want at most 1,500 (no logger kept)", perWorker)
	}
	t.Logf("%d bytes per worker", perWorker)
}
