package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// codeServer answers every request with the status code it holds.
type codeServer struct {
	code atomic.Int32
	srv  *httptest.Server
	last atomic.Pointer[http.Request]
}

func newCodeServer(t *testing.T, code int) *codeServer {
	s := &codeServer{}
	s.code.Store(int32(code))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.last.Store(r)
		w.WriteHeader(int(s.code.Load()))
		_, _ = fmt.Fprint(w, "body")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func readinessHTTP(port intstr.IntOrString, path string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: port, Path: path}},
		PeriodSeconds: 1, FailureThreshold: 1}
}

func TestHTTPGetByNamedPortWithHeaders(t *testing.T) {
	h := newHarness(t)
	s := newCodeServer(t, http.StatusOK)
	probe := readinessHTTP(intstr.FromString("web"), "/healthz?verbose=1")
	probe.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "example.test"}}
	h.run(corev1.Container{Name: "web", ReadinessProbe: probe,
		Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(hostPort(t, s.srv.Listener.Addr().String()))}}}, "c1")
	if s := h.m.Status(testUID, "c1"); s.Ready || !s.Started {
		t.Fatalf("before the first probe: %+v, want started and not ready", s)
	}
	h.expect(readiness, success)
	h.status("c1", ready)
	req := s.last.Load()
	if req.URL.Path != "/healthz" || req.URL.RawQuery != "verbose=1" || req.Host != "example.test" ||
		req.Header.Get("X-Probe") != "yes" || req.Header.Get("User-Agent") != "kube-probe/1.37" {
		t.Errorf("request %s %s host %s headers %v", req.URL.Path, req.URL.RawQuery, req.Host, req.Header)
	}

	s.code.Store(http.StatusServiceUnavailable)
	h.step(1, time.Second)
	h.expect(readiness, failure)
	if st := h.status("c1", notReady); st.LivenessFailed || st.Message != "HTTP probe failed with statuscode: 503" {
		t.Errorf("status %+v", st)
	}
	want := event{corev1.EventTypeWarning, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", "web"}
	if ev := h.events.all(); len(ev) != 1 || ev[0] != want {
		t.Errorf("events %+v, want %+v", ev, want)
	}
}

func TestHTTPGetUnknownPortName(t *testing.T) {
	h := newHarness(t)
	h.run(corev1.Container{Name: "web", ReadinessProbe: readinessHTTP(intstr.FromString("nope"), "/")}, "c1")
	h.expect(readiness, unknown)
	if ev := h.events.all(); len(ev) != 1 || !strings.Contains(ev[0].message, `Readiness probe errored: container web has no port named "nope"`) {
		t.Errorf("events %+v", ev)
	}
}

func TestHTTPGetRedirects(t *testing.T) {
	h := newHarness(t)
	final := newCodeServer(t, http.StatusInternalServerError)
	mux := http.NewServeMux()
	// Same host (127.0.0.1), another port: followed.
	mux.Handle("/same", http.RedirectHandler(final.srv.URL+"/x", http.StatusFound))
	// Another host: not followed; a success with a warning.
	mux.Handle("/other", http.RedirectHandler(strings.Replace(final.srv.URL, "127.0.0.1", "localhost", 1), http.StatusFound))
	redirector := httptest.NewServer(mux)
	t.Cleanup(redirector.Close)
	port := intstr.FromInt(hostPort(t, redirector.Listener.Addr().String()))

	h.run(corev1.Container{Name: "web", ReadinessProbe: readinessHTTP(port, "/same")}, "c1")
	h.expect(readiness, failure)
	h.run(corev1.Container{Name: "web", ReadinessProbe: readinessHTTP(port, "/other")}, "c2")
	h.expect(readiness, success)
	h.status("c2", ready)
	ev := h.events.all()
	if len(ev) != 2 || ev[1].reason != "ProbeWarning" || !strings.HasPrefix(ev[1].message, "Readiness probe warning: Probe terminated redirects") {
		t.Errorf("events %+v", ev)
	}
}

func TestHTTPGetTimeoutFails(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	probe := readinessHTTP(intstr.FromInt(hostPort(t, srv.Listener.Addr().String())), "/")
	probe.TimeoutSeconds = 1
	start := time.Now()
	h.run(corev1.Container{Name: "web", ReadinessProbe: probe}, "c1")
	h.expect(readiness, failure)
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("the probe took %v, want its 1s timeout", d)
	}
	if st := h.m.Status(testUID, "c1"); !strings.Contains(st.Message, "deadline exceeded") {
		t.Errorf("message %q", st.Message)
	}
}

func TestTCPSocket(t *testing.T) {
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("tcp")}},
		PeriodSeconds: 2, FailureThreshold: 1}
	h.run(corev1.Container{Name: "web", ReadinessProbe: probe,
		Ports: []corev1.ContainerPort{{Name: "tcp", ContainerPort: int32(hostPort(t, l.Addr().String()))}}}, "c1")
	h.expect(readiness, success)
	h.status("c1", ready)
	_ = l.Close()
	h.step(1, 2*time.Second)
	h.expect(readiness, failure)
	if st := h.status("c1", notReady); !strings.Contains(st.Message, "connection refused") {
		t.Errorf("message %q", st.Message)
	}
}

func TestGRPC(t *testing.T) {
	h := newHarness(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{
		Port: int32(hostPort(t, l.Addr().String())), Service: ptr.To("db")}}, PeriodSeconds: 1, FailureThreshold: 1}
	h.run(corev1.Container{Name: "web", ReadinessProbe: probe}, "c1")
	h.expect(readiness, success)
	h.status("c1", ready)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	h.step(1, time.Second)
	h.expect(readiness, failure)
	if st := h.status("c1", notReady); st.Message != `service unhealthy (responded with "NOT_SERVING")` {
		t.Errorf("message %q", st.Message)
	}
	srv.Stop()
	h.step(1, time.Second)
	h.expect(readiness, failure)
}

func TestExec(t *testing.T) {
	h := newHarness(t)
	var mode atomic.Value
	mode.Store("ok")
	var gotCmd atomic.Value
	h.rt.SetExec(func(_ context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
		gotCmd.Store(fmt.Sprint(id, cmd, timeout))
		switch mode.Load() {
		case "fail":
			return []byte("out "), []byte("boom"), 1, nil
		case "slow":
			return nil, nil, 0, fmt.Errorf("exec: %w", mruntime.ErrExecTimeout)
		case "gone":
			return nil, nil, 0, fmt.Errorf("exec: %w", mruntime.ErrNotFound)
		}
		return []byte("fine"), nil, 0, nil
	})
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name, pod.UID = testKey.Namespace, testKey.Name, testUID
	pod.Spec.Containers = []corev1.Container{{Name: "web", Image: "web"}}
	sandbox, err := h.rt.RunSandbox(t.Context(), pod)
	if err != nil {
		t.Fatal(err)
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/web", "check"}}},
		PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 1}
	pod.Spec.Containers[0].LivenessProbe = probe
	id := startFake(t, h, pod, sandbox, 0)
	h.expect(liveness, success)
	if got := gotCmd.Load(); got != fmt.Sprint(id, []string{"/web", "check"}, 3*time.Second) {
		t.Errorf("exec %v", got)
	}
	mode.Store("gone")
	h.step(1, time.Second)
	h.expect(liveness, unknown) // cannot tell: no change
	if st := h.m.Status(testUID, id); st.LivenessFailed {
		t.Fatalf("an exec error failed the probe: %+v", st)
	}
	mode.Store("slow")
	h.step(1, time.Second)
	h.expect(liveness, failure)
	st := h.status(id, failed)
	if st.Message != `command "/web check" timed out` {
		t.Errorf("message %q", st.Message)
	}
	// On hold until the engine restarts the container: no more probes.
	h.none()
	ev := h.events.all()
	if len(ev) != 2 || !strings.HasPrefix(ev[0].message, "Liveness probe errored: ") || ev[1].message != `Liveness probe failed: command "/web check" timed out` {
		t.Errorf("events %+v", ev)
	}

	mode.Store("fail")
	id2 := startFake(t, h, pod, sandbox, 1)
	h.expect(liveness, failure)
	if st := h.status(id2, failed); st.Message != "out boom" {
		t.Errorf("message %q", st.Message)
	}
}

// startFake starts the pod's container in the fake runtime as a new attempt
// and tells the Manager it is the one that runs.
func startFake(t *testing.T, h *harness, pod *corev1.Pod, sandbox string, attempt uint32) string {
	t.Helper()
	id, err := h.rt.StartContainer(t.Context(), pod, sandbox, &pod.Spec.Containers[0], attempt)
	if err != nil {
		t.Fatal(err)
	}
	h.m.UpdatePod(pod, []Running{{Name: "web", ID: id, StartedAt: h.clk.Now(), PodIP: "127.0.0.1"}})
	return id
}
