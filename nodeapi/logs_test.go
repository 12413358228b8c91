package nodeapi

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakePods is a fixed set of pods, keyed by namespace/name.
type fakePods map[string]*corev1.Pod

func (f fakePods) GetPod(ns, name string) (*corev1.Pod, bool) {
	p, ok := f[ns+"/"+name]
	return p, ok
}

func (f fakePods) ListPods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range f {
		out = append(out, p)
	}
	return out
}

// mutablePods lets a test remove a pod.
type mutablePods struct {
	mu   sync.Mutex
	pods fakePods
}

func (m *mutablePods) GetPod(ns, name string) (*corev1.Pod, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pods.GetPod(ns, name)
}

func (m *mutablePods) ListPods() []*corev1.Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pods.ListPods()
}

func (m *mutablePods) remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pods, key)
}

func testPod(ns, name, uid string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	return p
}

// allowAll lets the user "admin" do everything.
func allowAll() *fakeAuthz {
	var allowed []string
	for _, v := range []string{"get", "create"} {
		for _, s := range []string{"proxy", "pods", "log", "stats", "metrics", "healthz"} {
			allowed = append(allowed, "admin "+v+" "+s)
		}
	}
	return &fakeAuthz{allowed: allowed}
}

func newTestServer(t *testing.T, authz *fakeAuthz, pods Pods, logsDir string) *Server {
	t.Helper()
	if pods == nil {
		pods = fakePods{}
	}
	s, err := New(Config{NodeName: "n1", Port: 10250, Authenticator: fakeAuthn{}, Authorizer: authz, Pods: pods,
		PodLogsDir: logsDir, FollowInterval: 10 * time.Millisecond, Log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeLog(t *testing.T, dir, podDir, container, attempt string, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, podDir, container, attempt+".log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestContainerLogs(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, "default_web-n1_uid1", "web", "0", "2026-07-01T12:00:00Z stdout F first run")
	writeLog(t, dir, "default_web-n1_uid1", "web", "1",
		"2026-07-01T12:00:01Z stdout F one", "2026-07-01T12:00:02Z stderr F two", "2026-07-01T12:00:03Z stdout F three")
	// An old instance of the same pod: never read, whatever its times.
	writeLog(t, dir, "default_web-n1_old", "web", "5", "2026-07-01T13:00:00Z stdout F old instance")
	writeLog(t, dir, "default_nologs-n1_uid2", "other", "0", "2026-07-01T12:00:00Z stdout F x")
	pods := fakePods{
		"default/web-n1":    testPod("default", "web-n1", "uid1", "web"),
		"default/nologs-n1": testPod("default", "nologs-n1", "uid2", "main"),
	}
	s := newTestServer(t, allowAll(), pods, dir)
	for _, tc := range []struct {
		name, path string
		wantCode   int
		wantBody   string
	}{
		{"all", "/containerLogs/default/web-n1/web", 200, "one\ntwo\nthree\n"},
		{"tailLines", "/containerLogs/default/web-n1/web?tailLines=1", 200, "three\n"},
		{"tail (old name)", "/containerLogs/default/web-n1/web?tail=2", 200, "two\nthree\n"},
		{"tail all", "/containerLogs/default/web-n1/web?tail=all", 200, "one\ntwo\nthree\n"},
		{"previous", "/containerLogs/default/web-n1/web?previous=true", 200, "first run\n"},
		{"timestamps", "/containerLogs/default/web-n1/web?timestamps=true&tailLines=1", 200, "2026-07-01T12:00:03.000000000Z three\n"},
		{"limitBytes", "/containerLogs/default/web-n1/web?limitBytes=5", 200, "one\nt"},
		{"sinceTime", "/containerLogs/default/web-n1/web?sinceTime=2026-07-01T12:00:02Z", 200, "two\nthree\n"},
		{"sinceSeconds", "/containerLogs/default/web-n1/web?sinceSeconds=60", 200, ""},
		{"stream", "/containerLogs/default/web-n1/web?stream=Stderr", 200, "two\n"},
		{"unknown pod", "/containerLogs/default/nope-n1/web", 404, `pod "nope-n1" does not exist`},
		{"other namespace", "/containerLogs/kube-system/web-n1/web", 404, `pod "web-n1" does not exist`},
		{"static pod name is not the mirror name", "/containerLogs/default/web/web", 404, `pod "web" does not exist`},
		{"unknown container", "/containerLogs/default/web-n1/nope", 404, `container "nope" not found in pod "web-n1"`},
		{"no logs yet", "/containerLogs/default/nologs-n1/main", 400, `container "main" in pod "nologs-n1" has no logs yet`},
		{"negative tailLines", "/containerLogs/default/web-n1/web?tailLines=-1", 400, "tailLines: Invalid value: -1"},
		{"tailLines not a number", "/containerLogs/default/web-n1/web?tailLines=ten", 400, "invalid log options"},
		{"negative limitBytes", "/containerLogs/default/web-n1/web?limitBytes=-5", 400, "limitBytes: Invalid value: -5"},
		{"zero limitBytes", "/containerLogs/default/web-n1/web?limitBytes=0", 400, "limitBytes"},
		{"limitBytes not a number", "/containerLogs/default/web-n1/web?limitBytes=x", 400, "invalid log options"},
		{"negative sinceSeconds", "/containerLogs/default/web-n1/web?sinceSeconds=-3", 400, "sinceSeconds: Invalid value: -3"},
		{"sinceSeconds not a number", "/containerLogs/default/web-n1/web?sinceSeconds=soon", 400, "invalid log options"},
		{"both since", "/containerLogs/default/web-n1/web?sinceSeconds=3&sinceTime=2026-07-01T12:00:02Z", 400, "at most one of"},
		{"bad sinceTime", "/containerLogs/default/web-n1/web?sinceTime=yesterday", 400, "invalid log options"},
		{"bad stream", "/containerLogs/default/web-n1/web?stream=Both", 400, "stream: Unsupported value"},
		{"previous without one", "/containerLogs/default/nologs-n1/main?previous=true", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tc.path, nil)
			req.Header.Set("Authorization", "Bearer admin")
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("code %d (%q), want %d", rec.Code, rec.Body.String(), tc.wantCode)
			}
			if tc.wantCode == 200 && rec.Body.String() != tc.wantBody || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("body %q, want %q", rec.Body.String(), tc.wantBody)
			}
		})
	}
}

// TestFollowEndsWhenPodRemoved follows a log over a real connection: new
// lines arrive as written, and the stream ends when the pod leaves the
// node even though its log files are still there.
func TestFollowEndsWhenPodRemoved(t *testing.T) {
	dir := t.TempDir()
	path := writeLog(t, dir, "default_web-n1_uid1", "web", "0", "2026-07-01T12:00:01Z stdout F one")
	pods := &mutablePods{pods: fakePods{"default/web-n1": testPod("default", "web-n1", "uid1", "web")}}
	srv := httptest.NewServer(newTestServer(t, allowAll(), pods, dir).Handler())
	defer srv.Close()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/containerLogs/default/web-n1/web?follow=true", nil)
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expectLine(t, lines, "one")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("2026-07-01T12:00:02Z stdout F two\n")
	_ = f.Close()
	expectLine(t, lines, "two")
	pods.remove("default/web-n1")
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("unexpected line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the followed stream did not end when the pod was removed")
	}
}

func expectLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	select {
	case l := <-lines:
		if l != want {
			t.Fatalf("line %q, want %q", l, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no line %q within 10s", want)
	}
}

func TestPodsAndHealthz(t *testing.T) {
	pods := fakePods{
		"default/b-n1": testPod("default", "b-n1", "u2", "c"),
		"default/a-n1": testPod("default", "a-n1", "u1", "c"),
	}
	s := newTestServer(t, allowAll(), pods, "")
	req := httptest.NewRequest("GET", "/pods", nil)
	req.Header.Set("Authorization", "Bearer admin")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var list corev1.PodList
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || rec.Code != 200 {
		t.Fatalf("GET /pods: %d %v %s", rec.Code, err, rec.Body)
	}
	if list.Kind != "PodList" || len(list.Items) != 2 || list.Items[0].Name != "a-n1" || list.Items[1].UID != "u2" {
		t.Fatalf("pods %+v", list)
	}
	for _, path := range []string{"/stats/summary", "/metrics/resource", "/portForward/default/a-n1", "/attach/default/a-n1/c"} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer admin")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNotImplemented {
			t.Errorf("%s: %d, want 501 until wired", path, rec.Code)
		}
	}
}

// TestStalledReaderIsCutOff: a client that stops reading a followed log
// holds only its own request, and only until StalledWriteTimeout; other
// requests are served meanwhile.
func TestStalledReaderIsCutOff(t *testing.T) {
	dir := t.TempDir()
	// More than the connection's buffers take.
	line := "2026-07-01T12:00:01Z stdout F " + strings.Repeat("x", 200) + "\n"
	path := filepath.Join(dir, "default_web-n1_uid1", "web", "0.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 200_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	pods := fakePods{"default/web-n1": testPod("default", "web-n1", "uid1", "web")}
	s, err := New(Config{NodeName: "n1", Port: 10250, Authenticator: fakeAuthn{}, Authorizer: allowAll(), Pods: pods,
		PodLogsDir: dir, FollowInterval: 10 * time.Millisecond, StalledWriteTimeout: 300 * time.Millisecond, Log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Handler().ServeHTTP(w, r)
		if strings.HasPrefix(r.URL.Path, "/containerLogs") {
			close(ended)
		}
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	// Ask, then never read.
	if _, err := conn.Write([]byte("GET /containerLogs/default/web-n1/web?follow=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/healthz", nil)
	req.Header.Set("Authorization", "Bearer admin")
	resp, err := srv.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz while a reader stalls: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled log stream was not cut off")
	}
}
