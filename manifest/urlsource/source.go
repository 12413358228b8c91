package urlsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
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
	// LastGood, if set, keeps the last good version of every pod on disk:
	// a URL unreachable (or answering garbage) at start runs the pods of
	// the last good fetch.
	LastGood *lastgood.Store
	Log      logr.Logger
	Clock    clock.WithTicker
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
	case err != nil && !errors.Is(err, errNotModified) && s.published == nil && s.cfg.LastGood != nil:
		// At start: run what ran before the restart.
		fetches.WithLabelValues("error").Inc()
		s.failing = true
		snap := s.restoreAll(err)
		s.cfg.Log.Error(err, "Manifest URL unusable at start; running the pods of the last good fetch", "url", s.cfg.URL, "pods", len(snap.Pods))
		s.published = &desired.Snapshot{Pods: snap.Pods}
		s.cfg.Publish(snap)
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
		s.forgetOthers(nil)
		return desired.Snapshot{}, nil
	}
	pods, err := manifest.DecodePods(body)
	if err != nil {
		return desired.Snapshot{}, &manifest.Error{Origin: s.cfg.URL, Err: err}
	}
	var snap desired.Snapshot
	next := map[string]*manifest.StaticPod{}
	for _, pod := range pods {
		sp, err := manifest.LoadPod(pod, s.identity())
		if err != nil {
			p := desired.Problem{Origin: s.cfg.URL, Err: err}
			prev := s.last[pod.Name]
			if prev == nil {
				prev = s.restore(pod.Name)
			}
			if prev != nil {
				p.Key, sp = prev.Key(), prev
			}
			snap.Problems = append(snap.Problems, p)
			if sp == nil {
				continue
			}
		} else {
			s.save(pod)
			if prev := s.last[pod.Name]; prev != nil && prev.Hash == sp.Hash && manifest.SameMetadata(prev, sp) {
				sp = prev
			}
		}
		next[pod.Name] = sp
		snap.Pods = append(snap.Pods, sp)
	}
	s.last = next
	s.forgetOthers(next)
	return snap, nil
}

func (s *Source) identity() manifest.Identity {
	return manifest.Identity{NodeName: s.cfg.NodeName, Source: manifest.SourceHTTP, Origin: s.cfg.URL, Seen: s.cfg.Clock.Now()}
}

// storeKey is the last-good store's key of the URL's pod name.
func (s *Source) storeKey(name string) string { return s.cfg.URL + "#" + name }

// save keeps pod, as decoded from a good body, as its last good version.
func (s *Source) save(pod *corev1.Pod) {
	if s.cfg.LastGood == nil {
		return
	}
	saved := pod.DeepCopy() // a PodList item may omit its kind
	saved.APIVersion, saved.Kind = "v1", "Pod"
	data, err := json.Marshal(saved)
	if err == nil {
		err = s.cfg.LastGood.Put(s.storeKey(pod.Name), data)
	}
	if err != nil {
		// The pod runs regardless; only a restart with a bad body is exposed.
		s.cfg.Log.Error(err, "Cannot save the last good version of a manifest URL pod", "url", s.cfg.URL, "pod", pod.Name)
	}
}

// restore returns the saved last good version of the URL's pod name, or nil.
func (s *Source) restore(name string) *manifest.StaticPod {
	if s.cfg.LastGood == nil {
		return nil
	}
	e, ok := s.cfg.LastGood.Get(s.storeKey(name))
	if !ok {
		return nil
	}
	sp, err := manifest.Load(e.Data, s.identity())
	if err != nil {
		s.cfg.Log.Error(err, "Saved last good manifest URL pod no longer loads", "url", s.cfg.URL, "pod", name, "saved", e.Saved)
		return nil
	}
	return sp
}

// restoreAll returns every saved pod of the URL, each with the problem err.
func (s *Source) restoreAll(err error) desired.Snapshot {
	var snap desired.Snapshot
	prefix := s.storeKey("")
	for _, key := range s.cfg.LastGood.Keys() {
		name, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		if sp := s.restore(name); sp != nil {
			s.last[name] = sp
			snap.Pods = append(snap.Pods, sp)
			snap.Problems = append(snap.Problems, desired.Problem{Key: sp.Key(), Origin: s.cfg.URL,
				Err: fmt.Errorf("running the last good version saved before the restart: %w", err)})
		}
	}
	return snap
}

// forgetOthers drops every saved pod not in keep (by pod name): pods gone
// from the body, and pods of a URL no longer configured.
func (s *Source) forgetOthers(keep map[string]*manifest.StaticPod) {
	if s.cfg.LastGood == nil {
		return
	}
	for _, key := range s.cfg.LastGood.Keys() {
		if name, ok := strings.CutPrefix(key, s.storeKey("")); ok && keep[name] != nil {
			continue
		}
		if err := s.cfg.LastGood.Delete(key); err != nil {
			s.cfg.Log.Error(err, "Cannot forget a saved manifest URL pod", "key", key)
		}
	}
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
