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
	// RootDir holds mirrorlet's per-pod data (emptyDir volumes,
	// termination messages, seccomp profiles); default /var/lib/mirrorlet.
	RootDir string `json:"rootDir,omitempty"`
	// PodLogsDir is where container logs are written; default /var/log/pods.
	PodLogsDir string `json:"podLogsDir,omitempty"`
	// NodeLabels are added to the Node when mirrorlet registers it.
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`
	// RegisterNode makes mirrorlet register its Node; default true.
	RegisterNode *bool `json:"registerNode,omitempty"`
	// KubeAPIQPS and KubeAPIBurst limit requests to the API server.
	KubeAPIQPS   *float32 `json:"kubeAPIQPS,omitempty"`
	KubeAPIBurst *int32   `json:"kubeAPIBurst,omitempty"`
	// HealthzBindAddress serves /healthz, /readyz and /status; "0" disables.
	HealthzBindAddress string `json:"healthzBindAddress,omitempty"`
	// MetricsBindAddress serves /metrics; "0" disables.
	MetricsBindAddress string `json:"metricsBindAddress,omitempty"`
}
