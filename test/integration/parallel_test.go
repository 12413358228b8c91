package integration

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

// slowPodWrites makes every pod write of mirrorlet's client take delay
// longer (a slow API server) and records how many were in flight at once.
type slowPodWrites struct {
	delay time.Duration
	mu    sync.Mutex
	now   int
	peak  int
}

func (s *slowPodWrites) RoundTrip(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	if _, ok := podResource(req.URL.Path); !ok || req.Method == http.MethodGet {
		return next.RoundTrip(req)
	}
	s.mu.Lock()
	s.now++
	s.peak = max(s.peak, s.now)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.now--; s.mu.Unlock() }()
	select {
	case <-req.Context().Done():
	case <-time.After(s.delay):
	}
	return next.RoundTrip(req)
}

func (s *slowPodWrites) Peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// TestMirrorsWrittenInParallel: with an API server that takes 300 ms per
// pod write, 20 new static pods get their mirrors (apply, then status)
// written at once, as the kubelet's per-pod workers do, not one after the
// other (20 × 2 × 300 ms = 12 s).
func TestMirrorsWrittenInParallel(t *testing.T) {
	const pods, delay = 20, 300 * time.Millisecond
	slow := &slowPodWrites{delay: delay}
	a := startAgent(t, newNodeName("parallel"), "", nil, func(o *app.Options) {
		c := rest.CopyConfig(o.RestConfig)
		c.QPS, c.Burst = -1, 0 // no client-side limit here: the test is about the reconciler
		c.Wrap(func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) { return slow.RoundTrip(next, r) })
		})
		o.RestConfig = c
	})
	start := time.Now()
	for i := range pods {
		a.Write(fmt.Sprintf("p%d.yaml", i), podManifest(fmt.Sprintf("p%d", i), nil, "nginx"))
	}
	for i := range pods {
		a.WaitMirror(fmt.Sprintf("p%d", i), isRunning)
	}
	took := time.Since(start)
	if peak := slow.Peak(); peak < pods/2 {
		t.Errorf("at most %d pod writes were in flight at once, want ≥ %d (mirrors written one after the other)", peak, pods/2)
	}
	if limit := 4 * delay * 2; took > limit+2*time.Second {
		t.Errorf("%d mirrors Running after %s, want within ~%s (parallel writes)", pods, took, limit)
	}
	t.Logf("%d mirrors Running %s after the manifests; peak pod writes in flight %d", pods, took.Round(time.Millisecond), slow.Peak())
}
