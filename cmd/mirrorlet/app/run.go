package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/mirrorlet/mirrorlet/apibackoff"
	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app/sdnotify"
	"github.com/mirrorlet/mirrorlet/controllers/mirror"
	"github.com/mirrorlet/mirrorlet/controllers/node"
	"github.com/mirrorlet/mirrorlet/controllers/podstate"
	"github.com/mirrorlet/mirrorlet/controllers/scheduledpod"
	"github.com/mirrorlet/mirrorlet/controllers/staticpod"
	"github.com/mirrorlet/mirrorlet/logdir"
	"github.com/mirrorlet/mirrorlet/manifest"
	"github.com/mirrorlet/mirrorlet/manifest/desired"
	"github.com/mirrorlet/mirrorlet/manifest/dirsource"
	"github.com/mirrorlet/mirrorlet/manifest/lastgood"
	"github.com/mirrorlet/mirrorlet/manifest/urlsource"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
	"github.com/mirrorlet/mirrorlet/runtime/cri"
	"github.com/mirrorlet/mirrorlet/runtime/fake"
	"github.com/mirrorlet/mirrorlet/runtime/pleg"
)

var registerMetrics sync.Once

// agent is one running mirrorlet.
type agent struct {
	opts    Options
	runtime mruntime.Runtime
	// cache is the runtime cache (PLEG): the only reader of the runtime's
	// pod list; everything else reads pods through it.
	cache   *pleg.Cache
	events  *eventSink
	desired *desired.Set
	states  *podstate.Store
	mirrors *mirror.Tracker
	synced  atomic.Bool // API caches synced
	notify  *sdnotify.Notifier
	// logged holds, per source, the manifest problems already logged.
	logged sync.Map
	// logDir checks the pod log directory (CRI runtimes only; nil else);
	// logDirBad is true while it does not take logs.
	logDir    *logdir.Checker
	logDirBad atomic.Bool
}

// Run runs mirrorlet until ctx ends. It returns an error when it cannot
// start, or when the Node turns out to be kept by a kubelet.
func Run(ctx context.Context, opts Options) error {
	if err := opts.Complete(); err != nil {
		return err
	}
	if err := refuseUnsafeSources(opts); err != nil {
		return err
	}
	if opts.RotateCertificates {
		certs, err := setupCertificateRotation(ctx, &opts)
		if err != nil {
			return err
		}
		certs.Start()
		defer certs.Stop()
	}
	opts.RestConfig = withRequestCounting(opts.RestConfig)
	// Every client holds its requests while the API server is unreachable,
	// one probe at a time with jittered back-off (see package apibackoff).
	opts.RestConfig = apibackoff.WithGate(opts.RestConfig, opts.Log.WithName("apiserver"))
	rt := opts.Runtime
	if rt == nil {
		var err error
		if rt, err = newRuntime(ctx, opts); err != nil {
			return err
		}
	}
	cache, err := pleg.New(pleg.Config{Runtime: rt, Log: opts.Log.WithName("pleg")})
	if err != nil {
		return fmt.Errorf("setting up the runtime cache: %w", err)
	}
	a := &agent{opts: opts, runtime: rt, cache: cache,
		desired: desired.New(sourcesOf(opts)...), states: podstate.NewStore(), mirrors: mirror.NewTracker(),
		notify: sdnotify.New(sdnotify.Config{MaxAPIWait: opts.NotifyMaxAPIWait, Log: opts.Log.WithName("sdnotify")})}
	a.events = newEventSink(opts.Log.WithName("events"), a.desiredHash)
	g, ctx := errgroup.WithContext(ctx)
	if poller, ok := rt.(interface{ Run(context.Context) }); ok {
		g.Go(func() error { poller.Run(ctx); return nil })
	}
	g.Go(func() error { cache.Run(ctx); return nil })
	a.seedRunning(ctx)
	if err := a.setupNodeSide(ctx, g); err != nil {
		return err
	}
	a.setupServers(ctx, g)
	if err := a.setupNodeAPI(ctx, g); err != nil {
		return err
	}
	// The node side is up: systemd hears READY=1 once the API caches sync,
	// or after a bounded wait without them (see package sdnotify).
	g.Go(func() error { return a.notify.Run(ctx) })
	g.Go(func() error { return a.runAPI(ctx) })
	return g.Wait()
}

// sourcesOf lists the manifest sources opts configure, in priority order:
// the directory wins a clash.
func sourcesOf(opts Options) []string {
	var sources []string
	if opts.PodManifestPath != "" {
		sources = append(sources, manifest.SourceFile)
	}
	if opts.ManifestURL != "" {
		sources = append(sources, manifest.SourceHTTP)
	}
	return sources
}

// setupNodeSide sets up the node side: revisions, manifest sources, the pod
// workers and the log directory check.
func (a *agent) setupNodeSide(ctx context.Context, g *errgroup.Group) error {
	if err := a.setupRevisions(ctx, g); err != nil {
		return err
	}
	if err := a.setupSources(ctx, g); err != nil {
		return err
	}
	if err := a.setupStaticPods(ctx, g); err != nil {
		return err
	}
	return a.setupLogDir(ctx, g)
}

func (a *agent) setupSources(ctx context.Context, g *errgroup.Group) error {
	if a.opts.ManifestURL != "" {
		store, err := a.lastGood(manifest.SourceHTTP)
		if err != nil {
			return err
		}
		registerMetrics.Do(func() {
			for _, c := range urlsource.Collectors() {
				metrics.Registry.MustRegister(c)
			}
		})
		src, err := urlsource.New(urlsource.Config{
			URL: a.opts.ManifestURL, Header: a.opts.ManifestURLHeader, CAFile: a.opts.ManifestURLCAFile,
			AllowHTTP: a.opts.ManifestURLAllowHTTP,
			NodeName:  a.opts.NodeName, CheckFrequency: a.opts.HTTPCheckFrequency,
			Publish: a.publisher(manifest.SourceHTTP), LastGood: store,
			Log: a.opts.Log.WithName("urlsource"),
		})
		if err != nil {
			return fmt.Errorf("setting up manifest URL source: %w", err)
		}
		g.Go(func() error { return src.Run(ctx) })
	}
	if a.opts.PodManifestPath == "" {
		return nil
	}
	store, err := a.lastGood(manifest.SourceFile)
	if err != nil {
		return err
	}
	src, err := dirsource.New(dirsource.Config{
		Path: a.opts.PodManifestPath, NodeName: a.opts.NodeName, CheckFrequency: a.opts.FileCheckFrequency,
		AllowInsecurePermissions: a.opts.AllowInsecureManifestPermissions,
		Publish:                  a.publisher(manifest.SourceFile), LastGood: store,
		Log: a.opts.Log.WithName("dirsource"),
	})
	if err != nil {
		return fmt.Errorf("setting up manifest directory source: %w", err)
	}
	g.Go(func() error { return src.Run(ctx) })
	return nil
}

// seedRunning tells the desired set which pod versions already run, so
// that a manifest added while mirrorlet was stopped cannot take a running
// pod's name or host ports. A runtime that cannot answer now is skipped:
// then ties at start go by source priority and file order.
func (a *agent) seedRunning(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pods, err := a.cache.ListPods(ctx)
	if err != nil {
		a.opts.Log.Error(err, "Cannot list running pods at start; manifest clashes go by file order")
		return
	}
	hashes := make([]string, 0, len(pods))
	for _, p := range pods {
		hashes = append(hashes, string(p.UID))
	}
	a.desired.SetRunning(hashes)
}

// lastGood opens the last-good manifest store of source under the root
// directory; nil (no store) when mirrorlet has no root directory (tests).
func (a *agent) lastGood(source string) (*lastgood.Store, error) {
	if a.opts.RootDir == "" {
		return nil, nil
	}
	s, err := lastgood.Open(filepath.Join(a.opts.RootDir, "last-good-manifests", source))
	if err != nil {
		return nil, fmt.Errorf("opening the last good manifests: %w", err)
	}
	return s, nil
}

// publisher returns the function a source publishes with: it updates the
// desired set and logs every manifest problem once.
func (a *agent) publisher(source string) func(desired.Snapshot) {
	log := a.opts.Log.WithName("manifests")
	return func(s desired.Snapshot) {
		seen := map[string]bool{}
		old, _ := a.logged.Load(source)
		for _, p := range s.Problems {
			msg := p.Err.Error()
			seen[msg] = true
			if prev, _ := old.(map[string]bool); !prev[msg] {
				kept := ""
				if p.Key.Name != "" {
					kept = p.Key.String()
				}
				log.Error(p.Err, "Manifest not loaded", "source", source, "origin", p.Origin, "keptRunning", kept)
			}
		}
		a.logged.Store(source, seen)
		a.desired.Update(source, s)
	}
}

func (a *agent) setupStaticPods(ctx context.Context, g *errgroup.Group) error {
	var engine atomic.Pointer[staticpod.Engine]
	probes, err := a.newProber(&engine)
	if err != nil {
		return err
	}
	files, err := a.newFileWatcher(&engine)
	if err != nil {
		return err
	}
	r, err := staticpod.New(staticpod.Config{
		Runtime: a.runtime, Cache: a.cache, Desired: a.desired, States: a.states, Events: a.events,
		Prober: probes, Log: a.opts.Log.WithName("staticpod"), ResyncPeriod: a.opts.ResyncPeriod,
		Files: files,
	})
	if err != nil {
		return fmt.Errorf("setting up static pod reconciler: %w", err)
	}
	engine.Store(r)
	g.Go(func() error { return probes.Start(ctx) })
	g.Go(func() error { return files.Run(ctx) })
	g.Go(func() error { return r.Run(ctx) })
	return nil
}

// setupServers starts the health and metrics servers; they need no API.
func (a *agent) setupServers(ctx context.Context, g *errgroup.Group) {
	health := http.NewServeMux()
	health.Handle("/healthz", http.StripPrefix("/healthz", &healthz.Handler{Checks: map[string]healthz.Checker{"ping": healthz.Ping}}))
	health.Handle("/readyz", http.StripPrefix("/readyz", &healthz.Handler{Checks: map[string]healthz.Checker{
		"api-caches": func(*http.Request) error {
			if !a.synced.Load() {
				return errors.New("API caches not synced")
			}
			return nil
		},
		"runtime": func(r *http.Request) error { return a.runtime.Status(r.Context()) },
	}}))
	health.HandleFunc("/status", a.serveStatus)
	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	for _, s := range []struct {
		addr    string
		handler http.Handler
	}{{a.opts.HealthzBindAddress, health}, {a.opts.MetricsBindAddress, metricsMux}} {
		if s.addr == "" || s.addr == "0" {
			continue
		}
		srv := &http.Server{Addr: s.addr, Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving on %s: %w", s.addr, err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
}

// runAPI waits for the API server, refuses a kubelet's Node, then runs the
// mirror reconciler and node registrar until ctx ends.
func (a *agent) runAPI(ctx context.Context) error {
	log := a.opts.Log.WithName("api")
	direct, err := client.New(a.opts.RestConfig, client.Options{})
	if err != nil {
		return fmt.Errorf("creating API client: %w", err)
	}
	for {
		err := node.CheckOwnership(ctx, direct, a.opts.NodeName)
		if err == nil {
			break
		}
		if errors.Is(err, node.ErrKubeletNode) {
			return err
		}
		log.Error(err, "API server not reachable yet; static pods keep running, retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	mgr, err := a.newManager()
	if err != nil {
		return err
	}
	go func() {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			a.synced.Store(true)
			a.notify.APISynced()
		}
	}()
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running API controllers: %w", err)
	}
	return nil
}

func (a *agent) newManager() (ctrl.Manager, error) {
	nodeName := a.opts.NodeName
	mgr, err := ctrl.NewManager(a.opts.RestConfig, ctrl.Options{
		Logger:                 a.opts.Log,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true), CacheSyncTimeout: 10 * time.Minute},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:  {Field: fields.OneTermEqualSelector("spec.nodeName", nodeName), Transform: keepOwnManagedFields},
			&corev1.Node{}: {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
		}},
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&coordinationv1.Lease{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating controller manager: %w", err)
	}
	if err := a.setupMirrors(mgr); err != nil {
		return nil, err
	}
	if err := a.setupNode(mgr); err != nil {
		return nil, err
	}
	if err := a.setupScheduledPods(mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

func (a *agent) setupMirrors(mgr ctrl.Manager) error {
	recorder := mgr.GetEventRecorder("mirrorlet")
	a.events.connect(mgr.GetClient(), recorder)
	r, err := mirror.New(mirror.Config{
		NodeName: a.opts.NodeName, Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Desired: a.desired, States: a.states,
		Recorder: recorder, RuntimeName: a.runtime.Name(), Tracker: a.mirrors, LogDir: a.logDirStatus(),
	})
	if err != nil {
		return fmt.Errorf("setting up mirror reconciler: %w", err)
	}
	if err := mgr.Add(&mirror.ProblemReporter{
		NodeName: a.opts.NodeName, Client: mgr.GetClient(), Desired: a.desired, Recorder: recorder,
	}); err != nil {
		return fmt.Errorf("adding manifest problem reporter: %w", err)
	}
	return r.SetupWithManager(mgr)
}

// setupScheduledPods rejects the pods the scheduler binds to this node.
func (a *agent) setupScheduledPods(mgr ctrl.Manager) error {
	r, err := scheduledpod.New(scheduledpod.Config{
		NodeName: a.opts.NodeName, Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("mirrorlet"),
	})
	if err != nil {
		return fmt.Errorf("setting up scheduled pod rejecter: %w", err)
	}
	return r.SetupWithManager(mgr)
}

func (a *agent) setupNode(mgr ctrl.Manager) error {
	r, err := node.New(node.Config{
		NodeName: a.opts.NodeName, Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
		Version: Version, RuntimeVersion: a.runtimeVersion(context.Background()),
		RuntimeStatus: a.runtime.Status, Labels: a.opts.NodeLabels, Register: !a.opts.NoRegisterNode,
		Addresses: node.Addresses(a.opts.NodeIP, hostname()), KubeletPort: int32(a.opts.NodeAPI.Port),
	})
	if err != nil {
		return fmt.Errorf("setting up node registrar: %w", err)
	}
	return r.SetupWithManager(mgr)
}

// newRuntime connects to the runtime named by the endpoint: fake:// for
// the in-memory runtime, else a CRI runtime's unix socket.
func newRuntime(ctx context.Context, opts Options) (mruntime.Runtime, error) {
	if strings.HasPrefix(opts.RuntimeEndpoint, "fake://") {
		return fake.New(nil), nil
	}
	return cri.New(ctx, cri.Options{
		Endpoint: opts.RuntimeEndpoint, RootDir: opts.RootDir, PodLogsDir: opts.PodLogsDir,
		NodeName: opts.NodeName, NodeIP: opts.NodeIP, Log: opts.Log.WithName("cri"),
		Metrics: metrics.Registry, CallTimeout: opts.RuntimeRequestTimeout,
	})
}

// runtimeVersion is "<runtime>://<version>" for the Node's nodeInfo.
func (a *agent) runtimeVersion(ctx context.Context) string {
	if v, ok := a.runtime.(interface {
		Version(context.Context) (string, error)
	}); ok {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if s, err := v.Version(ctx); err == nil {
			return s
		}
		return a.runtime.Name() + "://unknown"
	}
	return a.runtime.Name() + "://" + Version
}
