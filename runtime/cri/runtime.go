package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Options configure a Runtime.
type Options struct {
	// Endpoint is the CRI socket, "unix:///run/containerd/containerd.sock"
	// (a bare absolute path is taken as a unix socket).
	Endpoint string
	// RootDir holds per-pod data: emptyDir volumes, termination-message
	// files and subPath bind mounts, under RootDir/pods/<uid>. Default
	// /var/lib/mirrorlet.
	RootDir string
	// PodLogsDir is where container logs go. Default /var/log/pods.
	PodLogsDir string
	// NodeName and NodeIP fill the downward API (spec.nodeName,
	// status.hostIP, and status.podIP of host-network pods).
	NodeName string
	NodeIP   string
	// EventsConfirm is how long a new event stream must stay open, without
	// an event, before it counts as up (StreamsEvents). Default 1s.
	EventsConfirm time.Duration
	// EventsRetryMin and EventsRetryMax bound the back-off between attempts
	// to open the event stream. Defaults 1s and 1m.
	EventsRetryMin time.Duration
	EventsRetryMax time.Duration
	// Metrics, if set, receives the mirrorlet_runtime_* metrics.
	Metrics prometheus.Registerer
	// CallTimeout bounds every CRI call but image pulls and stops.
	// Default 2m (creating a container can be slow on a loaded node).
	CallTimeout time.Duration
	// PullTimeout bounds one image pull. Default 10m.
	PullTimeout time.Duration
	Log         logr.Logger
}

// Runtime is a mruntime.Runtime over a CRI v1 runtime service.
type Runtime struct {
	opts    Options
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	img     runtimeapi.ImageServiceClient
	changes chan types.UID

	mu      sync.Mutex
	name    string
	version string
	// statuses caches container statuses by ID; a container's status only
	// changes with its state, so an entry is reused while the state matches.
	statuses map[string]*runtimeapi.ContainerStatus
	// ips caches sandbox IPs by sandbox ID (fixed for a sandbox's life).
	ips map[string]string
	// eventUIDs maps the container and sandbox IDs seen in events and
	// listings to their pod UID, for events that come without the labels.
	eventUIDs map[string]types.UID

	metrics             *metrics
	streaming           atomic.Bool
	unimplementedLogged atomic.Bool

	// peer is the process ID of the runtime at the other end of the
	// connection (0 while unknown), read when the connection is made.
	peer *atomic.Int32

	// subPathOpened, when set (by tests), is called between a subPath's
	// resolution beneath its volume directory and its bind mount.
	subPathOpened func(volumeDir, subPath string)
}

var _ mruntime.Runtime = (*Runtime)(nil)

// New connects to the CRI runtime at opts.Endpoint. The connection is made
// lazily and re-made by gRPC after the runtime restarts, so New succeeds
// while the runtime is down; Status tells whether it is up.
//
// The connection's back-off is the kubelet's CRI client's (100 ms doubling
// by 1.6 up to 3 s, with jitter): gRPC's default grows to 2 minutes, so
// after a long runtime outage mirrorlet would wait that long to see it back.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	setDefaults(&opts)
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	path, err := socketPath(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	peer := new(atomic.Int32)
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
			if err == nil {
				peer.Store(peerPID(c))
			}
			return c, err
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
		grpc.WithConnectParams(connectParams()),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to CRI runtime at %s: %w", opts.Endpoint, err)
	}
	r := &Runtime{
		opts: opts, conn: conn,
		rt:        runtimeapi.NewRuntimeServiceClient(conn),
		img:       runtimeapi.NewImageServiceClient(conn),
		changes:   make(chan types.UID, 256),
		name:      guessName(path),
		statuses:  map[string]*runtimeapi.ContainerStatus{},
		ips:       map[string]string{},
		eventUIDs: map[string]types.UID{},
		metrics:   m,
		peer:      peer,
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.Version(vctx); err != nil {
		opts.Log.Info("CRI runtime not reachable yet; will keep trying", "endpoint", opts.Endpoint, "error", err.Error())
	}
	return r, nil
}

func setDefaults(opts *Options) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if opts.RootDir == "" {
		opts.RootDir = "/var/lib/mirrorlet"
	}
	if opts.PodLogsDir == "" {
		opts.PodLogsDir = "/var/log/pods"
	}
	def(&opts.EventsConfirm, time.Second)
	def(&opts.EventsRetryMin, time.Second)
	def(&opts.EventsRetryMax, time.Minute)
	def(&opts.CallTimeout, 2*time.Minute)
	def(&opts.PullTimeout, 10*time.Minute)
}

// socketPath returns the unix socket path of a CRI endpoint.
func socketPath(endpoint string) (string, error) {
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		p := strings.TrimPrefix(endpoint, "unix://")
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("container runtime endpoint %q: want unix:///absolute/path", endpoint)
		}
		return p, nil
	case strings.HasPrefix(endpoint, "/"):
		return endpoint, nil
	default:
		return "", fmt.Errorf("container runtime endpoint %q: only unix sockets are supported (unix:///path)", endpoint)
	}
}

func guessName(path string) string {
	switch {
	case strings.Contains(path, "containerd"):
		return "containerd"
	case strings.Contains(path, "crio"):
		return "cri-o"
	default:
		return "cri"
	}
}

// Close closes the connection.
func (r *Runtime) Close() error { return r.conn.Close() }

// Name implements mruntime.Runtime: the runtime's own name once known
// ("containerd"), else a guess from the endpoint.
func (r *Runtime) Name() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.name
}

// Version returns "<name>://<version>" as the runtime reports it, e.g.
// "containerd://1.6.20".
func (r *Runtime) Version(ctx context.Context) (string, error) {
	resp, err := r.rt.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		return "", fmt.Errorf("asking CRI runtime %s for its version: %w", r.opts.Endpoint, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.name, r.version = resp.RuntimeName, resp.RuntimeVersion
	return r.name + "://" + r.version, nil
}

// Status implements mruntime.Runtime.
func (r *Runtime) Status(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := r.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return fmt.Errorf("CRI runtime %s: %w", r.opts.Endpoint, err)
	}
	for _, c := range resp.GetStatus().GetConditions() {
		if c.Type == runtimeapi.RuntimeReady && !c.Status {
			return fmt.Errorf("CRI runtime %s not ready: %s %s", r.opts.Endpoint, c.Reason, c.Message)
		}
	}
	r.mu.Lock()
	known := r.version != ""
	r.mu.Unlock()
	if !known {
		_, _ = r.Version(ctx)
	}
	return nil
}

// Changes implements mruntime.Runtime; Run must be running for it to report.
func (r *Runtime) Changes() <-chan types.UID { return r.changes }

func (r *Runtime) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.opts.CallTimeout)
}

// isNotFound reports whether err is the runtime saying an object is gone.
func isNotFound(err error) bool {
	if status.Code(err) == codes.NotFound {
		return true
	}
	// containerd 1.6 answers some calls on missing objects with Unknown and
	// a message instead of NotFound.
	return err != nil && strings.Contains(err.Error(), "not found")
}

// wrapNotFound turns a runtime's not-found answer into mruntime.ErrNotFound.
func wrapNotFound(err error) error {
	if isNotFound(err) && !errors.Is(err, mruntime.ErrNotFound) {
		return fmt.Errorf("%w: %w", mruntime.ErrNotFound, err)
	}
	return err
}

// connectParams caps the CRI connection's back-off at 3 s, as the
// kubelet's CRI client does.
func connectParams() grpc.ConnectParams {
	p := grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: 5 * time.Second}
	p.Backoff.BaseDelay, p.Backoff.MaxDelay = 100*time.Millisecond, 3*time.Second
	return p
}

// peerPID returns the process ID of the other end of a unix socket
// connection, or 0 if it cannot be had.
func peerPID(c net.Conn) int32 {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	var pid int32
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = cred.Pid
		}
	})
	return pid
}
