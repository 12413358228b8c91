package integration

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitAll waits (up to 5 min) until n static pods of a run in the runtime
// and their n mirrors are Running.
func waitAll(b *testing.B, a *agent, n int) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 5*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			running := 0
			for _, p := range a.RT.Pods() {
				if c := p.Latest("web"); c != nil && c.State == mruntime.ContainerRunning {
					running++
				}
			}
			if running < n {
				return false, nil
			}
			var pods corev1.PodList
			if err := k8s.List(ctx, &pods, client.MatchingFields{"spec.nodeName": a.Node}); err != nil {
				return false, nil //nolint:nilerr // retried
			}
			ok := 0
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning {
					ok++
				}
			}
			return ok >= n, nil
		})
	if err != nil {
		b.Fatalf("%d pods not running with Running mirrors within 5 min", n)
	}
}

// BenchmarkIdleCPU measures the CPU mirrorlet uses per second of wall time
// with 100 and 1,000 idle static pods on the fake runtime (runtime cache
// relisting every second, pod workers idle, mirrors up to date). The
// figure is the whole test process: mirrorlet and the benchmark's client.
func BenchmarkIdleCPU(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			a := startAgent(b, newNodeName(fmt.Sprintf("idle%d", n)), "", nil, func(o *app.Options) {
				o.ResyncPeriod, o.FileCheckFrequency = 0, 20*time.Second // mirrorlet's defaults
			})
			for i := range n {
				name := fmt.Sprintf("p%d", i)
				a.Write(name+".yaml", podManifest(name, nil, "nginx:1.27"))
			}
			waitAll(b, a, n)
			const window = 10 * time.Second
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				before := cpuTime(b)
				<-time.After(window)
				cpu += cpuTime(b) - before
			}
			b.ReportMetric(100*cpu.Seconds()/(float64(b.N)*window.Seconds()), "%cpu")
		})
	}
}

// BenchmarkCrashRestartWhile50PodsStop measures the time from a pod's
// crash to its restart starting while 50 other pods stop with a 30 s grace
// period (the fake runtime takes 30 s per stop). It crashes each of five
// pods once (a first crash restarts at once; later ones back off) and
// reports the mean; the setup is timed too, so that one run is enough.
func BenchmarkCrashRestartWhile50PodsStop(b *testing.B) {
	for range b.N {
		crashWhile50Stop(b)
	}
}

func crashWhile50Stop(b *testing.B) {
	const crashes = 5
	a := startAgent(b, newNodeName("crash50"), "", nil)
	defer a.Stop()
	for i := range crashes {
		a.Write(fmt.Sprintf("crash%d.yaml", i), podManifest(fmt.Sprintf("crash%d", i), nil, "nginx:1.27"))
	}
	for i := range 50 {
		a.Write(fmt.Sprintf("s%d.yaml", i), podManifest(fmt.Sprintf("s%d", i), nil, "nginx:1.27"))
	}
	waitAll(b, a, 50+crashes)
	a.RT.SetStopDelay(30 * time.Second)
	for i := range 50 {
		a.Remove(fmt.Sprintf("s%d.yaml", i))
	}
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, time.Minute, true,
		func(context.Context) (bool, error) { return a.RT.Stopping() == 50, nil })
	if err != nil {
		b.Fatalf("50 pods not stopping: %d stops in progress", a.RT.Stopping())
	}
	var total time.Duration
	for i := range crashes {
		crash := a.WaitRunning(fmt.Sprintf("crash%d", i), 1)
		before := a.RT.Starts(crash.UID)
		start := time.Now()
		if err := a.RT.Exit(crash.UID, "web", 1); err != nil {
			b.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, time.Minute, true,
			func(context.Context) (bool, error) { return a.RT.Starts(crash.UID) > before, nil })
		if err != nil {
			b.Fatal("the crashed pod was not restarted within a minute")
		}
		total += time.Since(start)
	}
	if a.RT.Stopping() != 50 {
		b.Fatalf("only %d of the 50 stops still in progress: the measurement is void", a.RT.Stopping())
	}
	b.ReportMetric(float64(total.Microseconds())/1000/crashes, "ms/restart")
}
