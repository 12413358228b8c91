package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The steps that act on the node's containers (containerd only): a spec
// edit that replaces every container, and a crash of every container.

// editEnv is the environment variable a spec edit sets (BENCH_EDIT=<n>):
// a change of the pod spec, so a new mirror (new spec hash) and a new
// container.
const editEnv = "BENCH_EDIT"

// webPods is a hostNetwork web server (test/images webserver) per pod, each
// on a port of its own found free now.
func webPods(t testing.TB, image string, n int) (func(string, map[string]string) *corev1.Pod, map[string]int) {
	ports := map[string]int{}
	for i := range n + 1 { // bench-0000 is also the warm-up pod
		addr := freeAddr(t)
		_, p, _ := net.SplitHostPort(addr)
		ports[fmt.Sprintf("bench-%04d", i)], _ = strconv.Atoi(p)
	}
	return func(name string, labels map[string]string) *corev1.Pod {
		pod := hostPod(image)(name, labels)
		pod.Spec.Containers[0].Args = []string{"--port=" + strconv.Itoa(ports[name])}
		return pod
	}, ports
}

// edited returns pod with the spec edit of version v (none when 0).
func edited(pod *corev1.Pod, v int) *corev1.Pod {
	if v > 0 {
		c := &pod.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: editEnv, Value: strconv.Itoa(v)})
	}
	return pod
}

// envOf returns the value of editEnv in a mirror's spec ("" when unset).
func envOf(p *corev1.Pod) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == editEnv {
			return e.Value
		}
	}
	return ""
}

// specEdit: a new env var in every manifest → a new mirror Ready whose
// container is new, then every web server answers with the new
// environment (checked, not timed: no polling in a timing).
func (w *workload) specEdit() {
	before := w.current()
	w.edit++
	want := strconv.Itoa(w.edit)
	since := time.Now()
	w.writeAll(w.labels)
	w.res.add("spec edit → new container Ready on the mirror", w.latencies("new container Ready", since, w.fileStamp, func(ev event) bool {
		if !ready(ev) || envOf(ev.pod) != want {
			return false
		}
		ids, _ := containers(ev.pod)
		oldIDs, _ := containers(before[ev.name])
		return len(ids) > 0 && !slices.Contains(oldIDs, ids[0]) && ids[0] != ""
	}))
	if w.ports == nil {
		return
	}
	answered := 0
	for _, name := range w.names() {
		if serves(w.ports[name], editEnv+"="+want) {
			answered++
		}
	}
	w.res.note("spec edit: %d of %d new containers answered on their port with %s=%s (GET /env after the mirror showed them Ready)",
		answered, w.n, editEnv, want)
	w.res.specServed = answered == w.n
}

// serves reports whether the web server on port answers /env with want
// within 10 s (a check after the timing).
func serves(port int, want string) bool {
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true,
		func(ctx context.Context) (bool, error) {
			body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/env", port))
			return err == nil && strings.Contains(body, want), nil
		})
	return err == nil
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}

// crash: every container's process killed on the node (SIGKILL) →
// restartCount incremented on the mirror, and → the mirror Ready again.
// Time starts at the kill of each.
func (w *workload) crash() {
	before := w.current()
	killed := sync.Map{}
	since := time.Now()
	for _, name := range w.names() {
		m := before[w.mirror(name)]
		ids, _ := containers(m)
		if len(ids) == 0 {
			w.t.Fatalf("crash: mirror %s shows no container", w.mirror(name))
		}
		pid, err := w.pidOf(ids[0])
		if err != nil {
			w.t.Fatalf("crash: mirror %s: %v; its container status: %+v; the watch's events of it: %s",
				m.Name, err, m.Status.ContainerStatuses, w.rec.history(m.Name))
		}
		killed.Store(name, time.Now())
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			w.t.Fatalf("killing %s (pid %d): %v", name, pid, err)
		}
	}
	start := func(name string) time.Time { at, _ := killed.Load(name); return at.(time.Time) }
	restarted := func(ev event) bool {
		old := before[ev.name]
		_, r0 := containers(old)
		_, r1 := containers(ev.pod)
		return exists(ev) && old != nil && ev.pod.UID == old.UID && r1 > r0
	}
	w.res.add("container killed → restartCount on the mirror", w.latencies("restartCount incremented", since, start, restarted))
	w.res.add("container killed → mirror Ready again", w.latencies("Ready again", since, start, func(ev event) bool {
		return restarted(ev) && ready(ev)
	}))
}

// pidOf returns the host pid of a container from the CRI runtime's
// verbose status (containerd's info.pid).
func (w *workload) pidOf(containerID string) (int, error) {
	_, id, _ := strings.Cut(containerID, "://")
	resp, err := w.criClient.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, fmt.Errorf("container status of %s: %w", id, err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		return 0, fmt.Errorf("reading the verbose status of %s: %w", id, err)
	}
	if info.Pid <= 0 {
		// Not running: say what the runtime has, against what the mirror
		// showed.
		st := resp.GetStatus()
		return 0, fmt.Errorf("no pid in the verbose status of %s: the runtime has it %s (exit code %d, reason %q, finished %s)",
			id, st.GetState(), st.GetExitCode(), st.GetReason(), time.Unix(0, st.GetFinishedAt()).UTC().Format(time.StampMilli))
	}
	return info.Pid, nil
}

// criClient is a CRI runtime client of endpoint ("unix://PATH").
func criClient(t testing.TB, endpoint string) runtimeapi.RuntimeServiceClient {
	t.Helper()
	path := strings.TrimPrefix(endpoint, "unix://")
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}
