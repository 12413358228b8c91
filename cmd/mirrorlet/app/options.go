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
	// ResyncPeriod of the static pod reconciler; 0: its default.
	ResyncPeriod time.Duration
	// NotifyMaxAPIWait bounds how long systemd's READY=1 waits for the API
	// caches once the node side is up; 0: sdnotify.DefaultMaxAPIWait.
	NotifyMaxAPIWait time.Duration
	Log              logr.Logger
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
	if o.FileCheckFrequency <= 0 {
		o.FileCheckFrequency = 20 * time.Second
	}
	if o.HTTPCheckFrequency <= 0 {
		o.HTTPCheckFrequency = 20 * time.Second
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
