package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/cri"
)

// BenchmarkContainerdStartFloor measures the floor under "50 pods ->
// Running" (issue 12): the suite's containerd driven directly over CRI by
// mirrorlet's own client (runtime/cri), no mirrorlet, no API server. 50
// goroutines released at once each run a hostNetwork sandbox and start one
// pause container in it (image present), as the pod workers do. It reports
// the time from the release to each container started (p50-ms, max-ms)
// and the CPU that containerd, its shims and what they run (runc, the
// containers) used meanwhile (runtime-cpu-s), read from /proc.
//
//	sudo KUBEBUILDER_ASSETS=$(hack/build-envtest.sh) go test -run '^$' -bench ContainerdStartFloor -benchtime 1x ./test/e2e/
func BenchmarkContainerdStartFloor(b *testing.B) {
	const n = 50
	dir := b.TempDir()
	rt, err := cri.New(b.Context(), cri.Options{Endpoint: endpoint, RootDir: filepath.Join(dir, "root"),
		PodLogsDir: filepath.Join(dir, "logs"), NodeIP: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close() })
	image := registry.Ref("pause")
	startFloorPods(b, rt, image, 1, 1) // pulls the image, outside the measurement
	// parallel: how many pods are being started at once (50: all, as
	// mirrorlet's pod workers do); listers: how many goroutines list the
	// runtime meanwhile, back to back (mirrorlet's runtime cache: one).
	for _, run := range []struct{ parallel, listers int }{{n, 0}, {n, 1}, {n, 8}, {8, 0}, {2, 0}} {
		parallel := run.parallel
		b.Run(fmt.Sprintf("pods=%d/parallel=%d/listers=%d", n, parallel, run.listers), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				cpu0 := runtimeCPU(b)
				stop := listRuntime(rt, run.listers)
				b.StartTimer()
				took := startFloorPods(b, rt, image, n, parallel)
				b.StopTimer()
				b.ReportMetric(float64(stop()), "lists")
				cpu := runtimeCPU(b) - cpu0
				slices.Sort(took)
				b.Logf("%d pods over CRI, %d at once: p50 %s, max %s; containerd + shims + runc CPU %.2fs", n, parallel,
					took[n/2].Round(time.Millisecond), took[n-1].Round(time.Millisecond), cpu.Seconds())
				b.ReportMetric(float64(took[n/2].Milliseconds()), "p50-ms")
				b.ReportMetric(float64(took[n-1].Milliseconds()), "max-ms")
				b.ReportMetric(cpu.Seconds(), "runtime-cpu-s")
				removeFloorPods(b, rt)
			}
		})
	}
}

// listRuntime starts listers goroutines that list the runtime back to back
// until the returned function is called; it returns the number of lists.
func listRuntime(rt *cri.Runtime, listers int) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	lists := 0
	for range listers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := rt.ListPods(ctx); err == nil {
					mu.Lock()
					lists++
					mu.Unlock()
				}
			}
		})
	}
	return func() int {
		cancel()
		wg.Wait()
		return lists
	}
}

// startFloorPods starts n hostNetwork pause pods, parallel at a time, and
// returns, for each, the time from the common start to its container
// started.
func startFloorPods(b *testing.B, rt *cri.Runtime, image string, n, parallel int) []time.Duration {
	b.Helper()
	var wg sync.WaitGroup
	took := make([]time.Duration, n)
	errs := make([]error, n)
	slots := make(chan struct{}, parallel)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			errs[i] = startFloorPod(b.Context(), rt, floorPod(image, i))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return took
}

func startFloorPod(ctx context.Context, rt *cri.Runtime, pod *corev1.Pod) error {
	sb, err := rt.RunSandbox(ctx, pod)
	if err != nil {
		return fmt.Errorf("running sandbox of %s: %w", pod.Name, err)
	}
	if _, err := rt.StartContainer(ctx, pod, sb, &pod.Spec.Containers[0], 0); err != nil {
		return fmt.Errorf("starting container of %s: %w", pod.Name, err)
	}
	return nil
}

func floorPod(image string, i int) *corev1.Pod {
	name := fmt.Sprintf("floor-%03d", i)
	grace := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(fmt.Sprintf("floor-%d-%03d", time.Now().UnixNano(), i))},
		Spec: corev1.PodSpec{HostNetwork: true, TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{
			Name: "main", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
		}}},
	}
}

// removeFloorPods removes every sandbox mirrorlet's labels mark (the
// benchmark's own: no mirrorlet runs on the suite's containerd meanwhile).
func removeFloorPods(b *testing.B, rt *cri.Runtime) {
	b.Helper()
	pods, err := rt.ListPods(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, p := range pods {
		if !strings.HasPrefix(p.Name, "floor-") {
			continue
		}
		wg.Go(func() {
			if err := rt.StopPod(b.Context(), p.SandboxID, 0); err != nil {
				b.Error(err)
			}
			if err := rt.RemovePodData(b.Context(), p.UID); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	eventually(b, time.Minute, "floor pods removed", func() bool {
		pods, err := rt.ListPods(b.Context())
		return err == nil && !slices.ContainsFunc(pods, func(p mruntime.Pod) bool { return strings.HasPrefix(p.Name, "floor-") })
	})
}

// runtimeCPU is the CPU time used so far by the suite's containerd and by
// every shim of it with all their descendants (runc, the containers), plus
// what they reaped: utime+stime+cutime+cstime from /proc/<pid>/stat.
func runtimeCPU(b *testing.B) time.Duration {
	b.Helper()
	pidData, err := os.ReadFile(filepath.Join(ctd.Dir, "containerd.pid"))
	if err != nil {
		b.Fatal(err)
	}
	root := strings.TrimSpace(string(pidData))
	sock := strings.TrimPrefix(endpoint, "unix://")
	procs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	parent := map[string]string{}
	ticks := map[string]int64{}
	var tops []string
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		ppid, t, ok := procStat(p.Name())
		if !ok {
			continue
		}
		parent[p.Name()], ticks[p.Name()] = ppid, t
		cmd, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if p.Name() == root || strings.Contains(string(cmd), sock) {
			tops = append(tops, p.Name())
		}
	}
	var sum int64
	for pid, t := range ticks {
		for a := pid; a != "" && a != "0"; a = parent[a] {
			if slices.Contains(tops, a) {
				sum += t
				break
			}
		}
	}
	return time.Duration(sum) * time.Second / 100 // USER_HZ
}

// procStat returns the parent and the CPU ticks (own and reaped children's)
// of a process.
func procStat(pid string) (string, int64, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return "", 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return "", 0, false
	}
	var t int64
	for _, k := range []int{11, 12, 13, 14} { // utime stime cutime cstime (fields 14-17)
		v, _ := strconv.ParseInt(f[k], 10, 64)
		t += v
	}
	return f[1], t, true
}
