package urlsource

import (
	"context"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

func pod(name, image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
		"\nspec:\n  containers:\n  - name: c\n    image: " + image + "\n"
}

const podList = `apiVersion: v1
kind: PodList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: c, image: "i:1"}]}
- metadata: {name: b}
  spec:
    containers:
    - {name: c, image: "i:1"}
`

// server serves a body that tests change, with an ETag.
type server struct {
	mu       sync.Mutex
	body     string
	status   int
	delay    time.Duration
	requests int
	got304   int
	header   http.Header
}

func (s *server) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.header = r.Header.Clone()
	status, body, delay := s.status, s.body, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(body)))
	if status == http.StatusOK && r.Header.Get("If-None-Match") == etag {
		s.mu.Lock()
		s.got304++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

type recorder struct{ snaps []desired.Snapshot }

func (r *recorder) publish(s desired.Snapshot) { r.snaps = append(r.snaps, s) }

func (r *recorder) last(t *testing.T) desired.Snapshot {
	t.Helper()
	if len(r.snaps) == 0 {
		t.Fatal("nothing published")
	}
	return r.snaps[len(r.snaps)-1]
}

func newSource(t *testing.T, cfg Config) (*Source, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.NodeName, cfg.Publish, cfg.Log = "n1", rec.publish, logr.Discard()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func names(s desired.Snapshot) string {
	var out []string
	for _, p := range s.Pods {
		out = append(out, p.Pod.Name+"="+p.Pod.Spec.Containers[0].Image+"/"+p.Pod.Annotations["kubernetes.io/config.source"])
	}
	return strings.Join(out, ",")
}

func TestFetchPodListWithETagAndHeaders(t *testing.T) {
	srv := &server{status: 200, body: podList}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	s, rec := newSource(t, Config{URL: ts.URL, Header: http.Header{"Authorization": {"Bearer x"}}})
	ctx := context.Background()
	s.Fetch(ctx)
	if got := names(rec.last(t)); got != "a-n1=i:1/http,b-n1=i:1/http" {
		t.Fatalf("pods %s", got)
	}
	if srv.header.Get("Authorization") != "Bearer x" {
		t.Errorf("header not sent: %v", srv.header)
	}
	s.Fetch(ctx)
	if srv.got304 != 1 || len(rec.snaps) != 1 {
		t.Errorf("unchanged manifest: %d 304s and %d snapshots, want 1 and 1", srv.got304, len(rec.snaps))
	}
	srv.set(200, pod("a", "i:2"))
	s.Fetch(ctx)
	if got := names(rec.last(t)); got != "a-n1=i:2/http" {
		t.Fatalf("after change: %s", got)
	}
}

func TestFailuresKeepLastGoodPods(t *testing.T) {
	srv := &server{status: 200, body: podList}
	ts := httptest.NewServer(srv)
	s, rec := newSource(t, Config{URL: ts.URL, Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	s.Fetch(ctx)
	good := names(rec.last(t))

	for _, tc := range []struct {
		name  string
		setup func()
	}{
		{"500", func() { srv.set(500, "oops") }},
		{"slow", func() { srv.set(200, pod("x", "i:9")); srv.mu.Lock(); srv.delay = time.Second; srv.mu.Unlock() }},
		{"huge", func() {
			srv.mu.Lock()
			srv.delay = 0
			srv.mu.Unlock()
			srv.set(200, pod("x", "i:9")+"#"+strings.Repeat("x", 11<<20))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.snaps)
			tc.setup()
			s.Fetch(ctx)
			if len(rec.snaps) != before {
				t.Errorf("a failed fetch published %s", names(rec.last(t)))
			}
		})
	}
	ts.Close()
	before := len(rec.snaps)
	s.Fetch(ctx) // connection refused
	if len(rec.snaps) != before || names(rec.last(t)) != good {
		t.Errorf("refused connection changed the pods")
	}
}

func TestInvalidBodyAndPodKeepLastGoodVersion(t *testing.T) {
	srv := &server{status: 200, body: podList}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	s, rec := newSource(t, Config{URL: ts.URL})
	ctx := context.Background()
	s.Fetch(ctx)

	srv.set(200, "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, imagee: x}]}\n")
	s.Fetch(ctx)
	snap := rec.last(t)
	if names(snap) != "a-n1=i:1/http,b-n1=i:1/http" || len(snap.Problems) != 2 || !strings.Contains(snap.Problems[0].Err.Error(), "imagee") {
		t.Fatalf("invalid body: pods %s problems %v", names(snap), snap.Problems)
	}

	// b now has two containers named c: a validation error in one pod.
	srv.set(200, podList+"    - {name: c, image: \"i:2\"}\n")
	s.Fetch(ctx)
	snap = rec.last(t)
	if names(snap) != "a-n1=i:1/http,b-n1=i:1/http" || len(snap.Problems) != 1 || snap.Problems[0].Key.Name != "b-n1" {
		t.Fatalf("one invalid pod: pods %s problems %+v", names(snap), snap.Problems)
	}
}

func TestEmptyBodyMeansNoPods(t *testing.T) {
	srv := &server{status: 200, body: podList}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	s, rec := newSource(t, Config{URL: ts.URL})
	s.Fetch(context.Background())
	srv.set(200, "\n")
	s.Fetch(context.Background())
	if got := rec.last(t); len(got.Pods) != 0 {
		t.Errorf("empty body left pods %s", names(got))
	}
}

func TestHTTPSWithCAFile(t *testing.T) {
	srv := &server{status: 200, body: pod("tls", "i:1")}
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	without, rec := newSource(t, Config{URL: ts.URL})
	without.Fetch(context.Background())
	if len(rec.snaps) != 0 {
		t.Fatalf("fetched over TLS without trusting the server's CA")
	}
	with, rec := newSource(t, Config{URL: ts.URL, CAFile: ca})
	with.Fetch(context.Background())
	if got := names(rec.last(t)); got != "tls-n1=i:1/http" {
		t.Fatalf("pods %s", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "", NodeName: "n"},
		{URL: "ftp://x", NodeName: "n"},
		{URL: "http://x", NodeName: "n", CAFile: "/nonexistent"},
	} {
		cfg.Publish = func(desired.Snapshot) {}
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
