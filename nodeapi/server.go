package nodeapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// Limits of every request.
const (
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes = 64 << 10
	// MaxBodyBytes bounds a request's body (streams run over the upgraded
	// connection, not the body).
	MaxBodyBytes = 1 << 20
)

// Pods is what the node API knows of this node's static pods. Results are
// shared: callers must not modify them. Safe for concurrent use.
type Pods interface {
	// GetPod returns the static pod namespace/name (name is the mirror
	// name), or false when this node runs no such pod.
	GetPod(namespace, name string) (*corev1.Pod, bool)
	// ListPods returns every static pod of the node, with its status when
	// known.
	ListPods() []*corev1.Pod
}

// Config configures a Server.
type Config struct {
	// NodeName is the Node the API serves: authorisation checks nodes/<NodeName>.
	NodeName string
	// Address and Port to listen on (Port 0 is not allowed here: the
	// caller disables the API by not running it).
	Address string
	Port    int
	// GetCertificate returns the serving certificate (it may change over
	// time). Required by Run.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Authenticator and Authorizer check every request. Required.
	Authenticator authenticator.Request
	Authorizer    authorizer.UnconditionalAuthorizer
	// Pods are the node's static pods. Required.
	Pods Pods
	// PodLogsDir is where the runtime writes container logs.
	PodLogsDir string
	// Handlers plugged in by other packages; nil answers 501. They read
	// r.PathValue("podNamespace"), "podID" and "containerName".
	Exec, Attach, PortForward, StatsSummary, ResourceMetrics http.Handler
	// EnableProfilingHandler serves Go's profiles under /debug/pprof/
	// (the kubelet's enableProfilingHandler), authorised as nodes/proxy;
	// when false that path answers 405, as the kubelet's does.
	EnableProfilingHandler bool
	// FollowInterval is how often a followed log is read; 0: podlogs'
	// default.
	FollowInterval time.Duration
	// StalledWriteTimeout ends a streamed response whose client has not
	// taken a write for that long. Default 1m.
	StalledWriteTimeout time.Duration
	Log                 logr.Logger
}

// Server is the node API.
type Server struct {
	cfg     Config
	handler http.Handler
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("node API: node name is required")
	case cfg.Authenticator == nil || cfg.Authorizer == nil:
		return nil, errors.New("node API: an authenticator and an authorizer are required")
	case cfg.Pods == nil:
		return nil, errors.New("node API: pods are required")
	case cfg.Port < 1 || cfg.Port > 65535:
		return nil, fmt.Errorf("node API: port %d out of range 1-65535", cfg.Port)
	}
	if cfg.StalledWriteTimeout <= 0 {
		cfg.StalledWriteTimeout = time.Minute
	}
	s := &Server{cfg: cfg}
	s.handler = s.withLimits(s.withAuth(s.routes()))
	return s, nil
}

// Handler returns the server's handler, authentication included: what Run
// serves over TLS.
func (s *Server) Handler() http.Handler { return s.handler }

// routes maps the kubelet's paths to handlers.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{podNamespace}/{podID}/{containerName}", s.serveContainerLogs)
	for _, m := range []string{"GET", "POST"} {
		mux.Handle(m+" /exec/{podNamespace}/{podID}/{containerName}", orNotImplemented(s.cfg.Exec, "exec"))
		mux.Handle(m+" /attach/{podNamespace}/{podID}/{containerName}", orNotImplemented(s.cfg.Attach, "attach"))
		mux.Handle(m+" /portForward/{podNamespace}/{podID}", orNotImplemented(s.cfg.PortForward, "portForward"))
	}
	mux.Handle("GET /stats/summary", orNotImplemented(s.cfg.StatsSummary, "stats/summary"))
	mux.Handle("GET /metrics/resource", orNotImplemented(s.cfg.ResourceMetrics, "metrics/resource"))
	mux.HandleFunc("GET /pods", s.servePods)
	mux.Handle("GET "+pprofBasePath, s.profilingHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

func orNotImplemented(h http.Handler, what string) http.Handler {
	if h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, what+" is not implemented by this mirrorlet", http.StatusNotImplemented)
	})
}

// withLimits bounds request bodies.
func (s *Server) withLimits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// Run serves HTTPS on Address:Port until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	addr := net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node API: listening on %s: %w", addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve serves HTTPS on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.cfg.GetCertificate == nil {
		_ = l.Close()
		return errors.New("node API: no serving certificate")
	}
	srv := &http.Server{
		Handler:           s.handler,
		MaxHeaderBytes:    MaxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.cfg.GetCertificate,
			// Client certificates are verified by the authenticator, against
			// the client CA as it is at the time of the request.
			ClientAuth: tls.RequestClientCert,
			NextProtos: []string{"h2", "http/1.1"},
		},
	}
	s.cfg.Log.Info("Serving node API", "address", l.Addr().String(), "node", s.cfg.NodeName)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close() // streams still open: cut them
		}
	}()
	err := srv.ServeTLS(l, "", "")
	cancel()
	<-done
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("node API: serving: %w", err)
	}
	return nil
}
