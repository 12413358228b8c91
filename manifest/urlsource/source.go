package urlsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
)

// Config configures a Source.
type Config struct {
	// URL of the manifest. Required.
	URL string
	// Header is sent with every request.
	Header http.Header
	// AllowHTTP allows an http:// URL to a host that is not a loopback
	// address (see CheckScheme).
	AllowHTTP bool
	// CAFile is a PEM bundle to verify an HTTPS server with, in addition
	// to the system's roots.
	CAFile   string
	NodeName string
	// CheckFrequency is the fetch period. Default 20s.
	CheckFrequency time.Duration
	// Timeout of one fetch. Default 10s.
	Timeout time.Duration
	Publish func(desired.Snapshot)
	Log     logr.Logger
	Clock   clock.WithTicker
}

// Source fetches one manifest URL.
type Source struct {
	cfg    Config
	client *http.Client
	// etag and lastModified of the last good fetch.
	etag, lastModified string
	// last holds the last good version of every pod, by name.
	last map[string]*manifest.StaticPod
	// published is the last snapshot published.
	published *desired.Snapshot
	failing   bool
}

// New validates and defaults cfg and returns a Source.
func New(cfg Config) (*Source, error) {
	switch {
	case cfg.URL == "":
		return nil, errors.New("manifest URL is required")
	case cfg.NodeName == "":
		return nil, errors.New("node name is required")
	case cfg.Publish == nil:
		return nil, errors.New("publish function is required")
	}
	if err := CheckScheme(cfg.URL, cfg.AllowHTTP); err != nil {
		return nil, err
	}
	if cfg.CheckFrequency <= 0 {
		cfg.CheckFrequency = 20 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pool, err := loadCA(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Source{
		cfg:    cfg,
		client: &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: checkRedirect(cfg.AllowHTTP)},
		last:   map[string]*manifest.StaticPod{},
	}, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest URL CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("manifest URL CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Run fetches at once and then every CheckFrequency until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	ticker := s.cfg.Clock.NewTicker(s.cfg.CheckFrequency)
	defer ticker.Stop()
	for {
		s.Fetch(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
	}
}

// FetchOnce fetches and parses the URL once, without publishing: for
// `mirrorlet validate`.
func (s *Source) FetchOnce(ctx context.Context) (desired.Snapshot, error) {
	return s.fetch(ctx)
}

// Fetch fetches the URL once and publishes what changed. Failures are
// logged and counted; the pods of the last good fetch stay.
func (s *Source) Fetch(ctx context.Context) {
	snap, err := s.fetch(ctx)
	switch {
	case errors.Is(err, errNotModified):
		fetches.WithLabelValues("not_modified").Inc()
		lastSuccess.SetToCurrentTime()
		s.recovered()
	case errors.As(err, new(*manifest.Error)) && s.published != nil:
		// The body turned invalid: keep every last good pod, reported.
		fetches.WithLabelValues("error").Inc()
		s.cfg.Log.Error(err, "Manifest URL body is invalid; keeping the pods of the last good fetch", "url", s.cfg.URL)
		snap := desired.Snapshot{Pods: s.published.Pods}
		for _, sp := range s.published.Pods {
			snap.Problems = append(snap.Problems, desired.Problem{Key: sp.Key(), Origin: s.cfg.URL, Err: err})
		}
		s.cfg.Publish(snap)
	case err != nil:
		fetches.WithLabelValues("error").Inc()
		if !s.failing {
			s.cfg.Log.Error(err, "Fetching manifest URL failed; keeping the pods of the last good fetch", "url", s.cfg.URL)
		}
		s.failing = true
	default:
		fetches.WithLabelValues("ok").Inc()
		lastSuccess.SetToCurrentTime()
		s.recovered()
		s.published = &desired.Snapshot{Pods: snap.Pods}
		s.cfg.Publish(snap)
	}
}

func (s *Source) recovered() {
	if s.failing {
		s.cfg.Log.Info("Manifest URL answers again", "url", s.cfg.URL)
	}
	s.failing = false
}

var errNotModified = errors.New("not modified")

func (s *Source) fetch(ctx context.Context) (desired.Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return desired.Snapshot{}, fmt.Errorf("building request: %w", err)
	}
	for k, vs := range s.cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if s.published != nil {
		if s.etag != "" {
			req.Header.Set("If-None-Match", s.etag)
		}
		if s.lastModified != "" {
			req.Header.Set("If-Modified-Since", s.lastModified)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return desired.Snapshot{}, fmt.Errorf("fetching %s: %w", s.cfg.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusNotModified && s.published != nil:
		return desired.Snapshot{}, errNotModified
	case resp.StatusCode != http.StatusOK:
		return desired.Snapshot{}, fmt.Errorf("fetching %s: %s", s.cfg.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, manifest.MaxManifestSize+1))
	if err != nil {
		return desired.Snapshot{}, fmt.Errorf("reading %s: %w", s.cfg.URL, err)
	}
	if len(body) > manifest.MaxManifestSize {
		return desired.Snapshot{}, fmt.Errorf("%s: body larger than the limit of %d bytes", s.cfg.URL, manifest.MaxManifestSize)
	}
	snap, err := s.parse(body)
	if err != nil {
		return desired.Snapshot{}, err
	}
	s.etag, s.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return snap, nil
}

// parse turns a body into a snapshot, keeping the last good version of pods
// that turned invalid. A body that does not decode at all is an error.
func (s *Source) parse(body []byte) (desired.Snapshot, error) {
	if strings.TrimSpace(string(body)) == "" {
		s.cfg.Log.Info("Manifest URL returned an empty body: no pods from it", "url", s.cfg.URL)
		s.last = map[string]*manifest.StaticPod{}
		return desired.Snapshot{}, nil
	}
	pods, err := manifest.DecodePods(body)
	if err != nil {
		return desired.Snapshot{}, &manifest.Error{Origin: s.cfg.URL, Err: err}
	}
	var snap desired.Snapshot
	next := map[string]*manifest.StaticPod{}
	for _, pod := range pods {
		id := manifest.Identity{NodeName: s.cfg.NodeName, Source: manifest.SourceHTTP, Origin: s.cfg.URL, Seen: s.cfg.Clock.Now()}
		sp, err := manifest.LoadPod(pod, id)
		if err != nil {
			p := desired.Problem{Origin: s.cfg.URL, Err: err}
			if prev := s.last[pod.Name]; prev != nil {
				p.Key, sp = prev.Key(), prev
			}
			snap.Problems = append(snap.Problems, p)
			if sp == nil {
				continue
			}
		} else if prev := s.last[pod.Name]; prev != nil && prev.Hash == sp.Hash && manifest.SameMetadata(prev, sp) {
			sp = prev
		}
		next[pod.Name] = sp
		snap.Pods = append(snap.Pods, sp)
	}
	s.last = next
	return snap, nil
}

var (
	fetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mirrorlet_manifest_url_fetches_total",
		Help: "Fetches of the manifest URL by result: ok, not_modified (304) or error (the last good pods stay).",
	}, []string{"result"})
	lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mirrorlet_manifest_url_last_success_timestamp_seconds",
		Help: "When the manifest URL last answered with a usable body or a 304.",
	})
)

// Collectors returns the source's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{fetches, lastSuccess} }
