package integration

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

// podWrites counts the pod writes (POST, PUT, PATCH, DELETE of pods and
// their subresources) that go through a client: a round tripper on
// mirrorlet's own connection to the API server, so it sees every write
// mirrorlet makes and nothing else.
type podWrites struct {
	mu     sync.Mutex
	counts map[string]int // "PATCH pods/status" -> n
}

func (w *podWrites) RoundTrip(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		if what, ok := podResource(req.URL.Path); ok {
			w.mu.Lock()
			w.counts[req.Method+" "+what]++
			w.mu.Unlock()
		}
	}
	return next.RoundTrip(req)
}

// podResource returns "pods" or "pods/<subresource>" for a pod URL path
// (/api/v1/namespaces/<ns>/pods[/<name>[/<sub>]]).
func podResource(path string) (string, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if p == "pods" && i >= 3 && parts[i-2] == "namespaces" {
			if i+2 < len(parts) {
				return "pods/" + parts[i+2], true
			}
			return "pods", true
		}
	}
	return "", false
}

// Total returns the number of pod writes so far.
func (w *podWrites) Total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.counts {
		n += c
	}
	return n
}

// Count returns the number of writes of one kind ("PATCH pods").
func (w *podWrites) Count(what string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[what]
}

func (w *podWrites) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprint(maps.Clone(w.counts))
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countPodWrites makes mirrorlet's API client count its pod writes.
func countPodWrites(t testing.TB) (*podWrites, agentOption) {
	t.Helper()
	w := &podWrites{counts: map[string]int{}}
	return w, func(o *app.Options) {
		c := rest.CopyConfig(o.RestConfig)
		c.Wrap(func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) { return w.RoundTrip(next, r) })
		})
		o.RestConfig = c
	}
}
