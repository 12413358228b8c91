package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Default returns the configuration with every default filled in.
// DefaultKubeAPIQPS is KubeAPIQPS's default: no client-side limit (see
// MirrorletConfiguration.KubeAPIQPS).
const DefaultKubeAPIQPS = -1

func Default() *MirrorletConfiguration {
	c := &MirrorletConfiguration{}
	SetDefaults(c)
	return c
}

// SetDefaults fills in what c leaves unset.
func SetDefaults(c *MirrorletConfiguration) {
	c.APIVersion, c.Kind = APIVersion, Kind
	if c.FileCheckFrequency.Duration == 0 {
		c.FileCheckFrequency = metav1.Duration{Duration: 20 * time.Second}
	}
	if c.HTTPCheckFrequency.Duration == 0 {
		c.HTTPCheckFrequency = metav1.Duration{Duration: 20 * time.Second}
	}
	if c.SyncFrequency.Duration == 0 {
		c.SyncFrequency = metav1.Duration{Duration: time.Minute}
	}
	if c.RuntimeRequestTimeout.Duration == 0 {
		c.RuntimeRequestTimeout = metav1.Duration{Duration: 2 * time.Minute}
	}
	if c.ContainerRuntimeEndpoint == "" {
		c.ContainerRuntimeEndpoint = "unix:///run/containerd-mirrorlet/containerd.sock"
	}
	if c.RootDir == "" {
		c.RootDir = "/var/lib/mirrorlet"
	}
	if c.PodLogsDir == "" {
		c.PodLogsDir = "/var/log/pods"
	}
	if c.RegisterNode == nil {
		c.RegisterNode = ptr.To(true)
	}
	if c.RevisionHistoryLimit == nil {
		c.RevisionHistoryLimit = ptr.To[int32](5)
	}
	if c.KubeAPIQPS == nil {
		c.KubeAPIQPS = ptr.To[float32](DefaultKubeAPIQPS)
	}
	if c.KubeAPIBurst == nil {
		c.KubeAPIBurst = ptr.To[int32](100)
	}
	if c.HealthzBindAddress == "" {
		c.HealthzBindAddress = "127.0.0.1:10348"
	}
	if c.MetricsBindAddress == "" {
		c.MetricsBindAddress = "127.0.0.1:10349"
	}
	setNodeAPIDefaults(c)
}

func setNodeAPIDefaults(c *MirrorletConfiguration) {
	if c.Address == "" {
		c.Address = "0.0.0.0"
	}
	if c.Port == nil {
		c.Port = ptr.To[int32](10250)
	}
	if c.Authentication.Webhook.Enabled == nil {
		c.Authentication.Webhook.Enabled = ptr.To(true)
	}
	if c.Authentication.Anonymous.Enabled == nil {
		c.Authentication.Anonymous.Enabled = ptr.To(false)
	}
	if c.EnableProfilingHandler == nil {
		c.EnableProfilingHandler = ptr.To(false)
	}
}

// Validate returns every problem of c with its field path.
func Validate(c *MirrorletConfiguration) field.ErrorList {
	var errs field.ErrorList
	if c.NodeName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(strings.ToLower(c.NodeName)) {
			errs = append(errs, field.Invalid(field.NewPath("nodeName"), c.NodeName, msg))
		}
	}
	errs = append(errs, validateSources(c)...)
	if e := c.ContainerRuntimeEndpoint; !strings.HasPrefix(e, "unix://") && !strings.HasPrefix(e, "fake://") && !strings.HasPrefix(e, "/") {
		errs = append(errs, field.Invalid(field.NewPath("containerRuntimeEndpoint"), e, "must be unix:///path/to.sock or fake://"))
	}
	if d := c.SyncFrequency.Duration; d < time.Second {
		errs = append(errs, field.Invalid(field.NewPath("syncFrequency"), d.String(), "must be at least 1s"))
	}
	if c.RuntimeRequestTimeout.Duration < 0 {
		errs = append(errs, field.Invalid(field.NewPath("runtimeRequestTimeout"), c.RuntimeRequestTimeout.Duration.String(), "must be positive"))
	}
	errs = append(errs, validateNode(c)...)
	errs = append(errs, validateNodeAPI(c)...)
	if l := c.RevisionHistoryLimit; l != nil && *l < 1 {
		errs = append(errs, field.Invalid(field.NewPath("revisionHistoryLimit"), *l, "must be at least 1"))
	}
	for name, addr := range map[string]string{"healthzBindAddress": c.HealthzBindAddress, "metricsBindAddress": c.MetricsBindAddress} {
		if addr == "0" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, field.Invalid(field.NewPath(name), addr, "must be host:port or 0"))
		}
	}
	return errs
}

func validateSources(c *MirrorletConfiguration) field.ErrorList {
	var errs field.ErrorList
	for name, d := range map[string]time.Duration{"fileCheckFrequency": c.FileCheckFrequency.Duration, "httpCheckFrequency": c.HTTPCheckFrequency.Duration} {
		if d < time.Second {
			errs = append(errs, field.Invalid(field.NewPath(name), d.String(), "must be at least 1s"))
		}
	}
	if u := c.StaticPodURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		errs = append(errs, field.Invalid(field.NewPath("staticPodURL"), u, "must be an http:// or https:// URL"))
	}
	return errs
}

func validateNode(c *MirrorletConfiguration) field.ErrorList {
	var errs field.ErrorList
	for k, v := range c.NodeLabels {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, field.Invalid(field.NewPath("nodeLabels").Key(k), k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, field.Invalid(field.NewPath("nodeLabels").Key(k), v, msg))
		}
	}
	if *c.KubeAPIQPS == 0 {
		errs = append(errs, field.Invalid(field.NewPath("kubeAPIQPS"), *c.KubeAPIQPS,
			"must be positive (a client-side limit) or negative (none: the API server's Priority and Fairness limits mirrorlet)"))
	}
	if *c.KubeAPIBurst <= 0 {
		errs = append(errs, field.Invalid(field.NewPath("kubeAPIBurst"), *c.KubeAPIBurst, "must be positive"))
	}
	return errs
}

func validateNodeAPI(c *MirrorletConfiguration) field.ErrorList {
	var errs field.ErrorList
	if c.NodeIP != "" && net.ParseIP(c.NodeIP) == nil {
		errs = append(errs, field.Invalid(field.NewPath("nodeIP"), c.NodeIP, "must be an IP address"))
	}
	if net.ParseIP(c.Address) == nil {
		errs = append(errs, field.Invalid(field.NewPath("address"), c.Address, "must be an IP address"))
	}
	if p := *c.Port; p < 0 || p > 65535 {
		errs = append(errs, field.Invalid(field.NewPath("port"), p, "must be between 1 and 65535, or 0 to disable the node API"))
	}
	if (c.TLSCertFile == "") != (c.TLSPrivateKeyFile == "") {
		errs = append(errs, field.Required(field.NewPath("tlsPrivateKeyFile"), "tlsCertFile and tlsPrivateKeyFile go together"))
	}
	return errs
}

// Load reads, defaults and validates a configuration file. Errors name the
// file and, where they can, the field.
func Load(path string) (*MirrorletConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	c, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	SetDefaults(c)
	if errs := Validate(c); len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			msgs = append(msgs, path+": "+e.Error())
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return c, nil
}

func decode(data []byte) (*MirrorletConfiguration, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return nil, fmt.Errorf("reading apiVersion and kind: %w", err)
	}
	if tm.APIVersion != APIVersion || tm.Kind != Kind {
		return nil, fmt.Errorf("apiVersion/kind: Invalid value: %q/%q: must be %s/%s", tm.APIVersion, tm.Kind, APIVersion, Kind)
	}
	c := &MirrorletConfiguration{}
	strict, err := kjson.UnmarshalStrict(js, c, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return c, nil
}

// Marshal renders c as YAML.
func Marshal(c *MirrorletConfiguration) ([]byte, error) {
	return yaml.Marshal(c)
}
