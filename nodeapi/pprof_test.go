package nodeapi

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
)

// TestProfilingHandler: /debug/pprof/ is authorised as nodes/proxy, serves
// Go's profiles when enabled and answers 405 when not, as the kubelet.
func TestProfilingHandler(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		enabled    bool
		allowed    []string
		wantCode   int
		wantBody   string
	}{
		{name: "needs nodes/proxy", path: "/debug/pprof/heap", enabled: true, allowed: []string{"bob get pods", "bob get metrics"},
			wantCode: 403, wantBody: "subresource(s)=[proxy]"},
		{name: "index", path: "/debug/pprof/", enabled: true, allowed: []string{"bob get proxy"}, wantCode: 200, wantBody: "goroutine"},
		{name: "goroutine dump", path: "/debug/pprof/goroutine?debug=1", enabled: true, allowed: []string{"bob get proxy"},
			wantCode: 200, wantBody: "goroutine profile: total"},
		{name: "cmdline", path: "/debug/pprof/cmdline", enabled: true, allowed: []string{"bob get proxy"}, wantCode: 200},
		{name: "disabled", path: "/debug/pprof/heap", allowed: []string{"bob get proxy"}, wantCode: 405, wantBody: "profiling endpoint is disabled."},
		{name: "disabled, still authorised first", path: "/debug/pprof/heap", wantCode: 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			authz := &fakeAuthz{allowed: tc.allowed}
			s, err := New(Config{NodeName: "n1", Port: 10250, Authenticator: fakeAuthn{}, Authorizer: authz, Pods: fakePods{},
				EnableProfilingHandler: tc.enabled, Log: testr.New(t)})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", tc.path, nil)
			req.Header.Set("Authorization", "Bearer bob")
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q (asked %v)", rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody, authz.asked)
			}
		})
	}
}

// TestProfilingHandlerServesHeapProfile: the heap profile is a gzipped
// pprof protobuf.
func TestProfilingHandlerServesHeapProfile(t *testing.T) {
	s, err := New(Config{NodeName: "n1", Port: 10250, Authenticator: fakeAuthn{}, Authorizer: &fakeAuthz{allowed: []string{"bob get proxy"}},
		Pods: fakePods{}, EnableProfilingHandler: true, Log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/debug/pprof/heap", nil)
	req.Header.Set("Authorization", "Bearer bob")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET /debug/pprof/heap: %d %q", rec.Code, rec.Body.String())
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("heap profile is not gzipped: %v", err)
	}
	if b, err := io.ReadAll(zr); err != nil || len(b) == 0 {
		t.Fatalf("heap profile: %d bytes, %v", len(b), err)
	}
}
