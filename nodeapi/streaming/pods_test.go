package streaming

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// fakeRuntime serves fixed pods; its streaming calls fail with err.
type fakeRuntime struct {
	pods []mruntime.Pod
	err  error
}

func (f *fakeRuntime) ListPods(context.Context) ([]mruntime.Pod, error) { return f.pods, nil }
func (f *fakeRuntime) Exec(context.Context, string, []string, mruntime.StreamOptions) (*url.URL, error) {
	return nil, f.err
}
func (f *fakeRuntime) Attach(context.Context, string, mruntime.StreamOptions) (*url.URL, error) {
	return nil, f.err
}
func (f *fakeRuntime) PortForward(context.Context, string, []int32) (*url.URL, error) {
	return nil, f.err
}

var t0 = time.Unix(1_700_000_000, 0)

func TestFindPodPrefersTheNewestReadySandbox(t *testing.T) {
	rt := &fakeRuntime{pods: []mruntime.Pod{
		{Namespace: "ns", Name: "web-node", SandboxID: "old-ready", Ready: true, CreatedAt: t0},
		{Namespace: "ns", Name: "web-node", SandboxID: "newest-stopped", Ready: false, CreatedAt: t0.Add(2 * time.Second)},
		{Namespace: "ns", Name: "web-node", SandboxID: "new-ready", Ready: true, CreatedAt: t0.Add(time.Second)},
		{Namespace: "other", Name: "web-node", SandboxID: "other-ns", Ready: true, CreatedAt: t0.Add(3 * time.Second)},
	}}
	h, err := New(Config{Runtime: rt, NodeName: "node"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.findPod(t.Context(), "ns", "web-node")
	if err != nil || p.SandboxID != "new-ready" {
		t.Fatalf("found %+v, %v; want sandbox new-ready", p, err)
	}
}

// TestHandlerErrors: what a request gets before any proxying, per cause.
func TestHandlerErrors(t *testing.T) {
	pod := mruntime.Pod{Namespace: "ns", Name: "web-node", SandboxID: "sb", Ready: true, Containers: []mruntime.Container{
		{ID: "c0", Name: "web", Attempt: 0, State: mruntime.ContainerRunning},
		{ID: "d1", Name: "done", Attempt: 1, State: mruntime.ContainerExited},
	}}
	for _, tc := range []struct {
		name, path string
		rtErr      error
		code       int
		body       string
	}{
		{"unknown pod", "/exec/ns/nope-node/web?command=x&output=1", nil, 404, "pod does not exist"},
		{"other node", "/exec/ns/web-elsewhere/web?command=x&output=1", nil, 404, "pod does not exist"},
		{"unknown container", "/exec/ns/web-node/nope?command=x&output=1", nil, 404, `container not found ("nope")`},
		{"exited container", "/attach/ns/web-node/done?output=1", nil, 404, `container not found ("done")`},
		{"no streams", "/exec/ns/web-node/web?command=x", nil, 400, "at least 1 of stdin, stdout, stderr"},
		{"no command", "/exec/ns/web-node/web?output=1", nil, 400, "command"},
		{"runtime not found", "/exec/ns/web-node/web?command=x&output=1", fmt.Errorf("gone: %w", mruntime.ErrNotFound), 404, "gone"},
		{"runtime failure", "/portForward/ns/web-node", errors.New("boom"), 500, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(Config{Runtime: &fakeRuntime{pods: []mruntime.Pod{pod}, err: tc.rtErr}, NodeName: "node"})
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.Handle("/exec/{podNamespace}/{podID}/{containerName}", h.Exec)
			mux.Handle("/attach/{podNamespace}/{podID}/{containerName}", h.Attach)
			mux.Handle("/portForward/{podNamespace}/{podID}", h.PortForward)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, tc.path, nil))
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("%d %q; want %d %q", rec.Code, rec.Body.String(), tc.code, tc.body)
			}
		})
	}
}
