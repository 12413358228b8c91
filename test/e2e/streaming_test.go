package e2e

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream" //nolint:staticcheck // client-go 0.37 portforward.New still takes this Dialer
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/client-go/util/exec"

	"github.com/mirrorlet/mirrorlet/nodeapi/streaming"
)

// streamServer serves the streaming handlers over TLS, on the suite's
// containerd, as the node API mounts them (without authentication: these
// tests prove the handlers, the node API's tests prove who may call them).
type streamServer struct {
	srv *httptest.Server
	cfg *rest.Config
}

func startStreamServer(t *testing.T, nodeName string) *streamServer {
	t.Helper()
	h, err := streaming.New(streaming.Config{Runtime: nodeRuntime, NodeName: nodeName})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/exec/{podNamespace}/{podID}/{containerName}", h.Exec)
	mux.Handle("/attach/{podNamespace}/{podID}/{containerName}", h.Attach)
	mux.Handle("/portForward/{podNamespace}/{podID}", h.PortForward)
	// Bodies limited as the node API server limits them: a wrapped
	// http.NoBody must not reach the runtime as a chunked body.
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		mux.ServeHTTP(w, r)
	})
	srv := httptest.NewTLSServer(limited)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return &streamServer{srv: srv, cfg: &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}}
}

// url returns the server's URL of path with query.
func (s *streamServer) url(path string, query url.Values) *url.URL {
	u, _ := url.Parse(s.srv.URL + path)
	u.RawQuery = query.Encode()
	return u
}

// execQuery is the query of an exec of cmd with the given streams.
func execQuery(cmd []string, streams ...string) url.Values {
	q := url.Values{corev1.ExecCommandParam: cmd}
	for _, s := range streams {
		q.Set(s, "1")
	}
	return q
}

// executors are the two protocols the API server (and kubectl) use.
func (s *streamServer) executors(t *testing.T, method string, u *url.URL) map[string]remotecommand.Executor {
	t.Helper()
	spdyExec, err := remotecommand.NewSPDYExecutor(s.cfg, method, u)
	if err != nil {
		t.Fatal(err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(s.cfg, "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]remotecommand.Executor{"spdy": spdyExec, "websocket": wsExec}
}

// TestStreamingExec runs commands in a static pod's container through the
// exec handler, over SPDY and over WebSocket: their output, stderr and exit
// code, and an interactive session on a terminal.
func TestStreamingExec(t *testing.T) {
	n := startNode(t)
	n.writeManifest("static-web.yaml", webPod("static-web", freePort(t)))
	n.waitRunning("static-web", 2*time.Minute)
	s := startStreamServer(t, n.name)
	path := "/exec/default/" + n.mirrorName("static-web") + "/web"

	for proto, ex := range s.executors(t, "POST", s.url(path, execQuery([]string{"/webserver", "echo", "hello", "exec"}, "output", "error"))) {
		var stdout, stderr bytes.Buffer
		err := streamWithin(t, ex, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
		if err != nil || stdout.String() != "hello exec\n" || stderr.String() != "stderr: hello exec\n" {
			t.Errorf("%s: echo: err %v, stdout %q, stderr %q; want stdout \"hello exec\\n\" and stderr \"stderr: hello exec\\n\"", proto, err, stdout.String(), stderr.String())
		}
	}
	for proto, ex := range s.executors(t, "POST", s.url(path, execQuery([]string{"/webserver", "exit", "3"}, "output", "error"))) {
		var stdout bytes.Buffer
		err := streamWithin(t, ex, remotecommand.StreamOptions{Stdout: &stdout, Stderr: io.Discard})
		var exitErr exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 || stdout.String() != "exiting 3\n" {
			t.Errorf("%s: exit 3: err %v, stdout %q; want exit status 3 and \"exiting 3\\n\"", proto, err, stdout.String())
		}
	}
	// Large output arrives whole (the proxy and the translator neither
	// truncate nor stall it).
	const size = 8 << 20
	for proto, ex := range s.executors(t, "POST", s.url(path, execQuery([]string{"/webserver", "bytes", fmt.Sprint(size)}, "output"))) {
		var stdout countingWriter
		start := time.Now()
		err := streamWithin(t, ex, remotecommand.StreamOptions{Stdout: &stdout})
		if err != nil || stdout.n != size {
			t.Errorf("%s: bytes %d: err %v, got %d bytes", proto, size, err, stdout.n)
		}
		t.Logf("%s: %d MiB of output in %s", proto, size>>20, time.Since(start).Round(time.Millisecond))
	}
	for proto, ex := range s.executors(t, "POST", s.url(path, execQuery([]string{"/webserver", "upper"}, "input", "output", "tty"))) {
		t.Run("tty-"+proto, func(t *testing.T) { interactive(t, ex) })
	}
}

// interactive drives `webserver upper` on a terminal: it must see a tty,
// answer each line, and end the session with status 0 on "exit".
func interactive(t *testing.T, ex remotecommand.Executor) {
	stdin, stdinW := io.Pipe()
	var out syncBuffer
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	go func() {
		done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Tty: true})
	}()
	eventually(t, 30*time.Second, "the command's banner on a terminal", func() bool {
		return strings.Contains(out.String(), "upper: tty=true")
	})
	_, _ = io.WriteString(stdinW, "hello tty\r")
	eventually(t, 30*time.Second, "the command's answer", func() bool {
		return strings.Contains(out.String(), "HELLO TTY")
	})
	_, _ = io.WriteString(stdinW, "exit\r")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("session ended with %v; want status 0. Output:\n%s", err, out.String())
		}
	case <-ctx.Done():
		t.Fatalf("the session did not end after \"exit\". Output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "BYE") {
		t.Errorf("output %q lacks BYE", out.String())
	}
	_ = stdinW.Close()
}

// streamWithin runs a non-interactive session with a deadline.
func streamWithin(t *testing.T, ex remotecommand.Executor, opts remotecommand.StreamOptions) error {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return ex.StreamWithContext(ctx, opts)
}

// TestStreamingNotFound: an unknown pod, container or namespace, a pod of
// another node and a container that does not run are 404s with the
// kubelet's messages, and nothing is started.
func TestStreamingNotFound(t *testing.T) {
	n := startNode(t)
	n.writeManifest("static-web.yaml", webPod("static-web", freePort(t)))
	done := webPod("done", 0)
	done.Spec.RestartPolicy = corev1.RestartPolicyNever
	done.Spec.Containers[0].Args, done.Spec.Containers[0].Ports = []string{"exit", "0"}, nil
	n.writeManifest("done.yaml", done)
	n.waitRunning("static-web", 2*time.Minute)
	eventually(t, time.Minute, "the container of pod done to exit", func() bool {
		m := n.mirror("done")
		return m != nil && len(m.Status.ContainerStatuses) == 1 && m.Status.ContainerStatuses[0].State.Terminated != nil
	})
	s := startStreamServer(t, n.name)
	otherNode := startStreamServer(t, "another-node")
	mirror := n.mirrorName("static-web")
	q := execQuery([]string{"/webserver", "echo", "x"}, "output").Encode()
	for _, tc := range []struct {
		s          *streamServer
		path, want string
	}{
		{s, "/exec/default/no-such-pod/web?" + q, "pod does not exist"},
		{s, "/exec/other-ns/" + mirror + "/web?" + q, "pod does not exist"},
		{s, "/exec/default/" + mirror + "/nope?" + q, `container not found ("nope")`},
		{s, "/exec/default/" + n.mirrorName("done") + "/web?" + q, `container not found ("web")`},
		{s, "/attach/default/" + mirror + "/nope?output=1", `container not found ("nope")`},
		{s, "/portForward/default/no-such-pod", "pod does not exist"},
		{otherNode, "/exec/default/" + mirror + "/web?" + q, "pod does not exist"},
		{otherNode, "/portForward/default/" + mirror, "pod does not exist"},
	} {
		code, body := tc.s.get(t, tc.path)
		if code != http.StatusNotFound || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d %q; want 404 %q", tc.path, code, body, tc.want)
		}
	}
	code, body := s.get(t, "/exec/default/"+mirror+"/web?command=x")
	if code != http.StatusBadRequest || !strings.Contains(body, "at least 1 of stdin, stdout, stderr") {
		t.Errorf("exec without streams: %d %q; want 400", code, body)
	}
}

// get does a plain GET (no upgrade) on the server.
func (s *streamServer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := s.srv.Client().Get(s.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestStreamingPortForward forwards a local port to the web server of a
// pod on the CNI network (its port is not open on the host) and fetches a
// page through it, with SPDY and with SPDY tunnelled in WebSocket
// (kubectl's default).
func TestStreamingPortForward(t *testing.T) {
	n := startNode(t)
	pod := webPod("pf-web", 8080, "--message", "through the tunnel")
	pod.Spec.HostNetwork = false
	n.writeManifest("pf-web.yaml", pod)
	n.waitRunning("pf-web", 2*time.Minute)
	s := startStreamServer(t, n.name)
	u := s.url("/portForward/default/"+n.mirrorName("pf-web"), nil)

	spdyTransport, upgrader, err := spdy.RoundTripperFor(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	dialers := map[string]httpstream.Dialer{
		"spdy":      spdy.NewDialer(upgrader, &http.Client{Transport: spdyTransport}, "POST", u),
		"websocket": wsDialer,
	}
	for proto, d := range dialers {
		t.Run(proto, func(t *testing.T) {
			body := forwardAndGet(t, d, 8080, "/")
			if !strings.Contains(body, "through the tunnel") {
				t.Fatalf("GET through the forwarded port: %q; want the pod's message", body)
			}
		})
	}
}

// forwardAndGet forwards a free local port to port of the pod through d
// and GETs path through it.
func forwardAndGet(t *testing.T, d httpstream.Dialer, port int, path string) string {
	t.Helper()
	stop, ready := make(chan struct{}), make(chan struct{})
	var out, errOut syncBuffer
	fw, err := portforward.New(d, []string{fmt.Sprintf("0:%d", port)}, stop, ready, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Logf("port-forward ended with %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward ended before it was ready: %v (%s)", err, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("port-forward not ready within 30s")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("forwarded ports %v: %v", ports, err)
	}
	body, err := get(int(ports[0].Local), path)
	if err != nil {
		t.Fatalf("GET %s through local port %d: %v (port-forward said %q)", path, ports[0].Local, err, errOut.String())
	}
	return body
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStreamingAttach attaches to a container whose main process reads its
// terminal, over SPDY and WebSocket: a line typed reaches the process and
// its answer comes back; detaching leaves the container running.
func TestStreamingAttach(t *testing.T) {
	n := startNode(t)
	pod := webPod("attach-me", 0)
	c := &pod.Spec.Containers[0]
	c.Args, c.Ports, c.Stdin, c.TTY = []string{"upper"}, nil, true, true
	n.writeManifest("attach-me.yaml", pod)
	m := n.waitRunning("attach-me", 2*time.Minute)
	s := startStreamServer(t, n.name)
	u := s.url("/attach/default/"+n.mirrorName("attach-me")+"/web", execQuery(nil, "input", "output", "tty"))
	for proto, ex := range s.executors(t, "POST", u) {
		t.Run(proto, func(t *testing.T) {
			stdin, stdinW := io.Pipe()
			defer func() { _ = stdinW.Close() }()
			var out syncBuffer
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Tty: true})
			}()
			line := "attached over " + proto
			// The first bytes may be typed before the session is up; type
			// again until the process answers.
			eventually(t, 30*time.Second, "the process's answer to "+line, func() bool {
				_, _ = io.WriteString(stdinW, line+"\r")
				return strings.Contains(out.String(), strings.ToUpper(line))
			})
			cancel()
			select {
			case err := <-done:
				t.Logf("detached: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("the attach session did not end after detaching")
			}
		})
	}
	if now := n.mirror("attach-me"); now == nil || now.Status.ContainerStatuses[0].RestartCount != m.Status.ContainerStatuses[0].RestartCount ||
		now.Status.ContainerStatuses[0].State.Running == nil {
		t.Errorf("the container did not keep running after the attach sessions: %+v", now)
	}
}

// countingWriter counts what is written to it.
type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}
