package apibackoff

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// DefaultBackoff is the pause between probes while the API server is
// unreachable: 100 ms doubling to 800 ms, each plus up to 25 % jitter, so
// at most 1.25 connection attempts a second once capped, and an API server
// that is back is found within a second.
func DefaultBackoff() wait.Backoff {
	return wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.25, Steps: 10, Cap: 800 * time.Millisecond}
}

const (
	// probeTimeout bounds one probe (a dial into a black hole takes long).
	probeTimeout = 5 * time.Second
	// refusedFor is how long probes refused with 401, 403 or 404 keep
	// the gate closed (see prober.ready).
	refusedFor = 10 * time.Second
)

// Config configures a Gate.
type Config struct {
	// Backoff is the pause between probes (DefaultBackoff if zero).
	Backoff wait.Backoff
	// Clock is the time source (the real clock if nil).
	Clock clock.Clock
	// Log says when the API server turns unreachable and answers again.
	Log logr.Logger
}

// Gate holds the requests of every client sharing it while the API server
// does not answer, and probes it with back-off meanwhile. Create it with
// New.
type Gate struct {
	cfg Config
	mu  sync.Mutex
	// down is true from a request failing in the transport until a probe
	// (or any request) gets an answer.
	down bool
	// outage counts the times the gate closed; a prober stops when it
	// is no longer its outage's.
	outage int
	// open is closed when the gate opens; held requests wait on it.
	open chan struct{}
	// nextProbe is when the prober sends its next probe (tests read it).
	nextProbe time.Time
}

// New returns an open Gate.
func New(cfg Config) *Gate {
	if cfg.Backoff == (wait.Backoff{}) {
		cfg.Backoff = DefaultBackoff()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Gate{cfg: cfg, open: make(chan struct{})}
}

// WithGate returns a copy of cfg whose every client, however many are
// built from it, shares one new Gate with the default back-off.
func WithGate(cfg *rest.Config, log logr.Logger) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(New(Config{Log: log}).Wrap)
	return cfg
}

// Wrap returns next behind the gate: use it as a rest.Config WrapperFunc.
// Every transport it wraps shares the gate.
func (g *Gate) Wrap(next http.RoundTripper) http.RoundTripper {
	return &transport{gate: g, next: next}
}

type transport struct {
	gate *Gate
	next http.RoundTripper
}

// RoundTrip waits for the gate to be open, sends req and tells the gate
// how it went.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.gate.wait(req.Context()); err != nil {
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	switch {
	case err == nil:
		t.gate.answered("request", resp.StatusCode)
	case req.Context().Err() == nil: // not the caller's cancelling
		t.gate.failed(req, t.next, err)
	}
	return resp, err
}

// wait returns at once while the gate is open, else when it opens or ctx
// ends (with ctx's error).
func (g *Gate) wait(ctx context.Context) error {
	g.mu.Lock()
	down, open := g.down, g.open
	g.mu.Unlock()
	if !down {
		return nil
	}
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the API server to answer: %w", ctx.Err())
	}
}

// answered opens the gate if it was closed; by and status say what
// answered, for the log.
func (g *Gate) answered(by string, status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.down {
		return
	}
	g.down = false
	close(g.open)
	g.cfg.Log.Info("API server answers again, releasing held requests", "answered", by, "status", status)
}

// failed closes the gate after req got no answer, and starts probing
// req's server through next, with req's credentials (an Authorization
// header set by client-go's wrappers outside the gate).
func (g *Gate) failed(req *http.Request, next http.RoundTripper, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.down {
		return
	}
	g.down, g.outage = true, g.outage+1
	g.open = make(chan struct{})
	g.cfg.Log.Info("API server unreachable, holding requests and probing it with back-off", "error", err.Error())
	p := &prober{gate: g, outage: g.outage, next: next, header: probeHeader(req.Header),
		url: (&url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: "/readyz"}).String()}
	go p.run()
}

// current reports whether outage is still going on.
func (g *Gate) current(outage int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down && g.outage == outage
}

// prober probes the server of one outage until it answers.
type prober struct {
	gate   *Gate
	outage int
	next   http.RoundTripper
	url    string
	header http.Header
	// refusedSince is when the probes began to be refused (401, 403, 404)
	// without a break.
	refusedSince time.Time
}

// probeHeader keeps the headers of h that say who asks.
func probeHeader(h http.Header) http.Header {
	out := http.Header{}
	for _, k := range []string{"Authorization", "User-Agent"} {
		if v := h.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

func (p *prober) run() {
	backoff := p.gate.cfg.Backoff
	for attempt := 1; ; attempt++ {
		pause := backoff.Step()
		p.gate.mu.Lock()
		p.gate.nextProbe = p.gate.cfg.Clock.Now().Add(pause)
		p.gate.mu.Unlock()
		<-p.gate.cfg.Clock.After(pause)
		if !p.gate.current(p.outage) {
			return
		}
		if status := p.probe(); p.ready(status) {
			p.gate.answered("probe", status)
			return
		}
		if attempt%50 == 0 {
			p.gate.cfg.Log.Info("API server still unreachable", "probes", attempt)
		}
	}
}

// probe returns the status of GET /readyz (0 for no answer).
func (p *prober) probe() int {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return 0
	}
	req.Header = p.header
	resp, err := p.next.RoundTrip(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// ready says whether a probe's status means the server serves again: 200.
// A kube-apiserver starting up answers 403 to every authenticated request
// until its authorizer has synced (released then, mirror writes would be
// refused as if for good), then 500 until it is ready; one shedding load
// answers 429 or 503. A server that keeps answering 401, 403 or 404 for
// refusedFor does answer, but will not say whether it is ready to us: it
// counts as ready then.
func (p *prober) ready(status int) bool {
	switch status {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		now := p.gate.cfg.Clock.Now()
		if p.refusedSince.IsZero() {
			p.refusedSince = now
		}
		return now.Sub(p.refusedSince) >= refusedFor
	}
	p.refusedSince = time.Time{}
	return false
}
