package app

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"

	"github.com/mirrorlet/mirrorlet/controllers/node"
	mruntime "github.com/mirrorlet/mirrorlet/runtime"
)

// Build information, set with -ldflags -X by make build.
var (
	Version   = "v0.0.0-dev"
	GitCommit = "unknown"
	BuildDate = "unknown"
)

// Options are mirrorlet's settings.
type Options struct {
	// RestConfig reaches the API server. Required.
	RestConfig *rest.Config
	// KubeconfigPath is the file RestConfig came from, if any: mirrorlet
	// refuses to start when it holds a credential others can read.
	KubeconfigPath string
	// AllowInsecureManifestPermissions runs manifests that group or others
	// can write (or another non-root user owns), with a warning. For
	// development only.
	AllowInsecureManifestPermissions bool
	// RotateCertificates renews the client certificate of RestConfig
	// before it expires (see rotation.go).
	RotateCertificates bool
	// NodeName defaults to the lower-cased hostname.
	NodeName string
	// PodManifestPath is the static pod directory; empty: none.
	PodManifestPath    string
	FileCheckFrequency time.Duration
	// ManifestURL serves static pods (one Pod or a PodList); empty: none.
	ManifestURL       string
	ManifestURLHeader http.Header
	// ManifestURLCAFile verifies an HTTPS manifest URL.
	ManifestURLCAFile string
	// ManifestURLAllowHTTP allows an http:// ManifestURL to a host that is
	// not a loopback address.
	ManifestURLAllowHTTP bool
	HTTPCheckFrequency   time.Duration
	// RuntimeEndpoint selects the container runtime: "fake://" or a CRI
	// endpoint such as unix:///run/containerd/containerd.sock. Ignored
	// when Runtime is set.
	RuntimeEndpoint string
	// RuntimeRequestTimeout bounds every CRI call but image pulls and
	// container stops; 0: 2m.
	RuntimeRequestTimeout time.Duration
	// Runtime, when set, is used instead of connecting to RuntimeEndpoint.
	Runtime mruntime.Runtime
	// RootDir holds per-pod data; PodLogsDir container logs (CRI runtime
	// only; defaults /var/lib/mirrorlet and /var/log/pods).
	RootDir    string
	PodLogsDir string
	// NodeLabels are added to the Node when mirrorlet registers it.
	NodeLabels map[string]string
	// NoRegisterNode stops mirrorlet from creating its Node when missing
	// (--register-node=false).
	NoRegisterNode bool
	// HealthzBindAddress serves /healthz and /readyz; "0" disables.
	HealthzBindAddress string
	// MetricsBindAddress serves /metrics; "0" disables.
	MetricsBindAddress string
	// RevisionHistoryLimit is how many revisions of each static pod are
	// kept under RootDir/revisions; 0: the store's default (5).
	RevisionHistoryLimit int
	// ResyncPeriod of the static pod reconciler; 0: its default.
	ResyncPeriod time.Duration
	// NodeIP is the node's InternalIP; default: node.HostIP().
	NodeIP string
	// NodeAPI configures the kubelet-compatible node API.
	NodeAPI NodeAPIOptions
	// NotifyMaxAPIWait bounds how long systemd's READY=1 waits for the API
	// caches once the node side is up; 0: sdnotify.DefaultMaxAPIWait.
	NotifyMaxAPIWait time.Duration
	Log              logr.Logger
}

// NodeAPIOptions configure the node API (package nodeapi); the kubelet's
// settings of the same names.
type NodeAPIOptions struct {
	// Address and Port to serve on; Port 0 disables the node API.
	Address string
	Port    int
	// TLSCertFile and TLSPrivateKeyFile: the serving certificate. Without
	// them, RotateServerCertificates requests one from the cluster; else
	// a self-signed one is made under RootDir/pki.
	TLSCertFile, TLSPrivateKeyFile string
	RotateServerCertificates       bool
	// ClientCAFile verifies client certificates; AnonymousAuth lets
	// requests without credentials through (authorised as
	// system:anonymous); WebhookAuth checks bearer tokens by TokenReview.
	ClientCAFile  string
	AnonymousAuth bool
	WebhookAuth   bool
	// EnableProfilingHandler serves Go's profiles under /debug/pprof/ on
	// the node API, to callers allowed nodes/proxy (kubelet:
	// enableProfilingHandler). EnableContentionProfiling also records
	// where goroutines block (kubelet: enableContentionProfiling); it
	// takes effect only with EnableProfilingHandler.
	EnableProfilingHandler    bool
	EnableContentionProfiling bool
}

// Complete defaults and validates o.
func (o *Options) Complete() error {
	if o.RestConfig == nil {
		return errors.New("a kubeconfig is required (--kubeconfig)")
	}
	if o.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return errors.New("node name is required (--node-name): the hostname cannot be read")
		}
		o.NodeName = host
	}
	o.NodeName = strings.ToLower(o.NodeName)
	if o.PodManifestPath == "" && o.ManifestURL == "" {
		// Without a source the desired set is empty: mirrorlet would stop
		// every pod it runs. That is never what a missing flag means.
		return errors.New("no static pod source: set --pod-manifest-path (staticPodPath) or --manifest-url (staticPodURL); " +
			"without one mirrorlet would stop every pod it runs")
	}
	if o.FileCheckFrequency <= 0 {
		o.FileCheckFrequency = 20 * time.Second
	}
	if o.HTTPCheckFrequency <= 0 {
		o.HTTPCheckFrequency = 20 * time.Second
	}
	if o.NodeIP == "" {
		o.NodeIP = node.HostIP()
	}
	if o.Runtime == nil && o.RuntimeEndpoint == "" {
		return errors.New("a container runtime endpoint is required (--container-runtime-endpoint)")
	}
	return nil
}

// ParseHeaders parses the kubelet's --manifest-url-header format: each value
// is a comma-separated list of "Name:Value"; repeated names add values in
// order.
func ParseHeaders(values []string) (http.Header, error) {
	h := http.Header{}
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			name, value, ok := strings.Cut(item, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("manifest URL header %q: want Name:Value", item)
			}
			h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	return h, nil
}
