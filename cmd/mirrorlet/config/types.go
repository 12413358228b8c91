package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion and Kind of the configuration file.
const (
	APIVersion = "config.mirrorlet.io/v1alpha1"
	Kind       = "MirrorletConfiguration"
)

// MirrorletConfiguration configures mirrorlet. Every field has a flag of
// the same meaning; field names follow the kubelet's KubeletConfiguration
// where the meaning is the same.
type MirrorletConfiguration struct {
	metav1.TypeMeta `json:",inline"`
	// NodeName is the Node mirrorlet registers; default: the hostname.
	NodeName string `json:"nodeName,omitempty"`
	// Kubeconfig is the path of the kubeconfig for the API server.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// StaticPodPath is the manifest directory.
	StaticPodPath string `json:"staticPodPath,omitempty"`
	// StaticPodURL serves static pods (one Pod or a PodList).
	StaticPodURL string `json:"staticPodURL,omitempty"`
	// StaticPodURLHeader is sent with every StaticPodURL request.
	StaticPodURLHeader map[string][]string `json:"staticPodURLHeader,omitempty"`
	// StaticPodURLCAFile verifies an HTTPS StaticPodURL.
	StaticPodURLCAFile string `json:"staticPodURLCAFile,omitempty"`
	// AllowInsecureManifestPermissions runs manifests that group or
	// others can write, or another non-root user owns (development only).
	AllowInsecureManifestPermissions bool `json:"allowInsecureManifestPermissions,omitempty"`
	// StaticPodURLAllowHTTP allows an http:// StaticPodURL to a host that
	// is not a loopback address.
	StaticPodURLAllowHTTP bool `json:"staticPodURLAllowHTTP,omitempty"`
	// FileCheckFrequency is the period of full manifest directory rescans.
	FileCheckFrequency metav1.Duration `json:"fileCheckFrequency,omitempty"`
	// HTTPCheckFrequency is the period of StaticPodURL fetches.
	HTTPCheckFrequency metav1.Duration `json:"httpCheckFrequency,omitempty"`
	// RotateCertificates makes mirrorlet renew its client certificate
	// before it expires, through a CertificateSigningRequest (kubelet:
	// rotateCertificates).
	RotateCertificates bool `json:"rotateCertificates,omitempty"`
	// ContainerRuntimeEndpoint is the CRI endpoint, or fake://.
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint,omitempty"`
	// SyncFrequency is how often every pod worker syncs even without a
	// change (kubelet: syncFrequency); default 1m.
	SyncFrequency metav1.Duration `json:"syncFrequency,omitempty"`
	// RuntimeRequestTimeout bounds every CRI call but image pulls and
	// container stops (which have their own); default 2m.
	RuntimeRequestTimeout metav1.Duration `json:"runtimeRequestTimeout,omitempty"`
	// RootDir holds mirrorlet's per-pod data (emptyDir volumes,
	// termination messages, seccomp profiles); default /var/lib/mirrorlet.
	RootDir string `json:"rootDir,omitempty"`
	// PodLogsDir is where container logs are written; default /var/log/pods.
	PodLogsDir string `json:"podLogsDir,omitempty"`
	// RevisionHistoryLimit is how many revisions of each static pod are
	// kept under RootDir/revisions for mirrorlet history and rollback;
	// default 5.
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
	// NodeLabels are added to the Node when mirrorlet registers it.
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`
	// RegisterNode makes mirrorlet register its Node; default true.
	RegisterNode *bool `json:"registerNode,omitempty"`
	// KubeAPIQPS and KubeAPIBurst limit requests to the API server on the
	// client side (the kubelet's fields). A negative KubeAPIQPS, the
	// default, sets no client-side limit: the API server's Priority and
	// Fairness queues mirrorlet's requests in its own flow (one per agent
	// identity), so a thousand mirrors are written in seconds without
	// starving other clients, where a 50 QPS client limit takes 40 s.
	KubeAPIQPS   *float32 `json:"kubeAPIQPS,omitempty"`
	KubeAPIBurst *int32   `json:"kubeAPIBurst,omitempty"`
	// HealthzBindAddress serves /healthz, /readyz and /status; "0" disables.
	HealthzBindAddress string `json:"healthzBindAddress,omitempty"`
	// MetricsBindAddress serves /metrics; "0" disables.
	MetricsBindAddress string `json:"metricsBindAddress,omitempty"`

	// NodeIP is the node's InternalIP in the Node's status.addresses, which
	// the API server dials for the node API; default: detected.
	NodeIP string `json:"nodeIP,omitempty"`
	// Address is the node API's listen address; default 0.0.0.0.
	Address string `json:"address,omitempty"`
	// Port is the node API's HTTPS port, advertised in the Node's
	// status.daemonEndpoints; default 10250; 0 disables the node API.
	Port *int32 `json:"port,omitempty"`
	// TLSCertFile and TLSPrivateKeyFile are the node API's serving
	// certificate and key (PEM), read again when they change.
	TLSCertFile       string `json:"tlsCertFile,omitempty"`
	TLSPrivateKeyFile string `json:"tlsPrivateKeyFile,omitempty"`
	// RotateServerCertificates requests the serving certificate from the
	// cluster (signer kubernetes.io/kubelet-serving) and renews it, when
	// no TLSCertFile is given.
	RotateServerCertificates bool `json:"rotateServerCertificates,omitempty"`
	// EnableProfilingHandler serves Go's profiles (pprof) under
	// /debug/pprof/ on the node API, to callers allowed get on
	// nodes/proxy, as the kubelet's field of the same name; default
	// false (the kubelet's is true): see README, "Profiling".
	EnableProfilingHandler *bool `json:"enableProfilingHandler,omitempty"`
	// EnableContentionProfiling records where goroutines block (block
	// profile, rate 1) when EnableProfilingHandler is true; default false.
	EnableContentionProfiling bool `json:"enableContentionProfiling,omitempty"`
	// Authentication of node API callers.
	Authentication Authentication `json:"authentication"`
}

// Authentication says who may call the node API, as the kubelet's
// KubeletAuthentication.
type Authentication struct {
	X509      X509Authentication      `json:"x509"`
	Webhook   WebhookAuthentication   `json:"webhook"`
	Anonymous AnonymousAuthentication `json:"anonymous"`
}

// X509Authentication accepts client certificates signed by ClientCAFile.
type X509Authentication struct {
	ClientCAFile string `json:"clientCAFile,omitempty"`
}

// WebhookAuthentication accepts bearer tokens the API server confirms by
// TokenReview; default true.
type WebhookAuthentication struct {
	Enabled *bool `json:"enabled,omitempty"`
}

// AnonymousAuthentication lets requests without credentials through as
// system:anonymous (still authorised); default false.
type AnonymousAuthentication struct {
	Enabled *bool `json:"enabled,omitempty"`
}
