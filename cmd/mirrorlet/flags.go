package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/config"
)

// agentFlags are the flags of the agent (the root command). Most bind
// straight to a MirrorletConfiguration, so that a --config file can be
// loaded under the flags given on the command line.
type agentFlags struct {
	cfg        configFlags
	configFile string
	kubeletCfg string
	headers    []string
	nodeLabels map[string]string
	zap        zap.Options
}

type configFlags struct{ *config.MirrorletConfiguration }

// limitClient sets kubeAPIQPS and kubeAPIBurst on rc: a negative QPS
// leaves client-go without a client-side rate limiter.
func (c configFlags) limitClient(rc *rest.Config) {
	rc.QPS, rc.Burst = *c.KubeAPIQPS, int(*c.KubeAPIBurst)
}

func newAgentFlags() *agentFlags {
	return &agentFlags{cfg: configFlags{config.Default()}}
}

// flag groups, in the order --help shows them.
const (
	groupSources = "Static pod sources"
	groupNode    = "Node and API server"
	groupRuntime = "Container runtime"
	groupServe   = "Health, metrics and logs"
	groupNodeAPI = "Node API (kubectl logs, exec, port-forward)"
)

func (fl *agentFlags) bind(cmd *cobra.Command) {
	f, c := cmd.Flags(), fl.cfg.MirrorletConfiguration
	add := func(group, kubelet string, name string) {
		_ = f.SetAnnotation(name, "group", []string{group})
		if kubelet != "" {
			_ = f.SetAnnotation(name, "kubelet", []string{kubelet})
		}
	}
	f.StringVar(&fl.configFile, "config", "", "MirrorletConfiguration file (config.mirrorlet.io/v1alpha1); flags given on the command line override it.")
	add(groupNode, "--config", "config")
	f.StringVar(&fl.kubeletCfg, "from-kubelet-config", "", "Read the static pod settings of a KubeletConfiguration file (staticPodPath, staticPodURL, ...).")
	add(groupSources, "", "from-kubelet-config")
	f.StringVar(&c.StaticPodPath, "pod-manifest-path", c.StaticPodPath, "Directory of static pod manifests.")
	add(groupSources, "--pod-manifest-path", "pod-manifest-path")
	f.DurationVar(&c.FileCheckFrequency.Duration, "file-check-frequency", c.FileCheckFrequency.Duration, "Period of full rescans of the manifest directory; changes are also seen at once through inotify.")
	add(groupSources, "--file-check-frequency", "file-check-frequency")
	f.StringVar(&c.StaticPodURL, "manifest-url", c.StaticPodURL, "URL of static pods: one Pod or a PodList.")
	add(groupSources, "--manifest-url", "manifest-url")
	f.StringArrayVar(&fl.headers, "manifest-url-header", nil, "HTTP headers for --manifest-url, 'Name:Value,Name2:Value2'; repeatable.")
	add(groupSources, "--manifest-url-header", "manifest-url-header")
	f.StringVar(&c.StaticPodURLCAFile, "manifest-url-ca-file", c.StaticPodURLCAFile, "PEM CA bundle that verifies an HTTPS --manifest-url.")
	add(groupSources, "", "manifest-url-ca-file")
	f.BoolVar(&c.AllowInsecureManifestPermissions, "allow-insecure-manifest-permissions", c.AllowInsecureManifestPermissions, "Run manifests that group or others can write, or another non-root user owns, with a warning (development only).")
	add(groupSources, "", "allow-insecure-manifest-permissions")
	f.BoolVar(&c.StaticPodURLAllowHTTP, "manifest-url-allow-http", c.StaticPodURLAllowHTTP, "Allow an http:// --manifest-url to a host that is not a loopback address (whoever answers it runs root containers).")
	add(groupSources, "", "manifest-url-allow-http")
	f.DurationVar(&c.HTTPCheckFrequency.Duration, "http-check-frequency", c.HTTPCheckFrequency.Duration, "Period of --manifest-url fetches.")
	add(groupSources, "--http-check-frequency", "http-check-frequency")
	f.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "Path to a kubeconfig file for the API server.")
	add(groupNode, "--kubeconfig", "kubeconfig")
	f.BoolVar(&c.RotateCertificates, "rotate-certificates", c.RotateCertificates, "Renew the kubeconfig's client certificate before it expires through a CertificateSigningRequest (signer kubernetes.io/kube-apiserver-client), kept under --root-dir/pki.")
	add(groupNode, "--rotate-certificates", "rotate-certificates")
	f.StringVar(&c.NodeName, "node-name", c.NodeName, "Name of this node, never a kubelet's; default: the hostname, lower-cased.")
	add(groupNode, "--hostname-override", "node-name")
	f.StringToStringVar(&fl.nodeLabels, "node-labels", nil, "Labels for the Node when mirrorlet registers it, 'k=v,k2=v2'.")
	add(groupNode, "--node-labels", "node-labels")
	f.BoolVar(c.RegisterNode, "register-node", *c.RegisterNode, "Register the Node if it does not exist.")
	add(groupNode, "--register-node", "register-node")
	f.Float32Var(c.KubeAPIQPS, "kube-api-qps", *c.KubeAPIQPS, "Queries per second to the API server; negative: no client-side limit, the API server's Priority and Fairness is the guard.")
	add(groupNode, "--kube-api-qps", "kube-api-qps")
	f.Int32Var(c.KubeAPIBurst, "kube-api-burst", *c.KubeAPIBurst, "Burst of queries to the API server (with a positive --kube-api-qps).")
	add(groupNode, "--kube-api-burst", "kube-api-burst")
	f.StringVar(&c.ContainerRuntimeEndpoint, "container-runtime-endpoint", c.ContainerRuntimeEndpoint, "CRI endpoint of the container runtime (mirrorlet's own, never a kubelet's), or fake:// for an in-memory runtime.")
	add(groupRuntime, "--container-runtime-endpoint", "container-runtime-endpoint")
	f.DurationVar(&c.RuntimeRequestTimeout.Duration, "runtime-request-timeout", c.RuntimeRequestTimeout.Duration,
		"Timeout of every container runtime call but image pulls (10m, and the runtime's own pull progress timeout) and container stops (grace period plus this).")
	add(groupRuntime, "--runtime-request-timeout", "runtime-request-timeout")
	f.DurationVar(&c.SyncFrequency.Duration, "sync-frequency", c.SyncFrequency.Duration,
		"Period of the sync of every pod worker even without a change; runtime events, manifest changes, probe results and back-off ends wake a worker at once.")
	add(groupRuntime, "--sync-frequency", "sync-frequency")
	f.StringVar(&c.RootDir, "root-dir", c.RootDir, "Directory of per-pod data: emptyDir volumes, termination messages, seccomp profiles.")
	add(groupRuntime, "--root-dir", "root-dir")
	f.StringVar(&c.PodLogsDir, "pod-logs-dir", c.PodLogsDir, "Directory of container logs, as <namespace>_<name>_<uid>/<container>/<attempt>.log.")
	add(groupRuntime, "podLogsDir (config file)", "pod-logs-dir")
	f.Int32Var(c.RevisionHistoryLimit, "revision-history-limit", *c.RevisionHistoryLimit, "Revisions kept per static pod under --root-dir/revisions, for mirrorlet history and rollback.")
	add(groupRuntime, "", "revision-history-limit")
	f.StringVar(&c.HealthzBindAddress, "healthz-bind-address", c.HealthzBindAddress, "Address of /healthz, /readyz and /status; 0 disables.")
	add(groupServe, "", "healthz-bind-address")
	f.StringVar(&c.MetricsBindAddress, "metrics-bind-address", c.MetricsBindAddress, "Address of Prometheus /metrics; 0 disables.")
	add(groupServe, "", "metrics-bind-address")
	fl.bindNodeAPI(cmd, add)
	logFlags := flag.NewFlagSet("log", flag.ContinueOnError)
	fl.zap.BindFlags(logFlags)
	f.AddGoFlagSet(logFlags)
	logFlags.VisitAll(func(gf *flag.Flag) { add(groupServe, "", gf.Name) })
	cmd.SetUsageFunc(groupedUsage)
}

// bindNodeAPI binds the node API's flags, the kubelet's of the same names.
func (fl *agentFlags) bindNodeAPI(cmd *cobra.Command, add func(group, kubelet, name string)) {
	f, c := cmd.Flags(), fl.cfg.MirrorletConfiguration
	authn := &c.Authentication
	f.StringVar(&c.NodeIP, "node-ip", c.NodeIP, "IP address of the node: its InternalIP in the Node's status, which the API server dials; default: detected.")
	f.StringVar(&c.Address, "address", c.Address, "IP address the node API listens on.")
	f.Int32Var(c.Port, "port", *c.Port, "HTTPS port of the node API, advertised in the Node's status; use another one next to a kubelet; 0 disables.")
	f.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "Serving certificate of the node API (PEM, may hold intermediates); read again when it changes.")
	f.StringVar(&c.TLSPrivateKeyFile, "tls-private-key-file", c.TLSPrivateKeyFile, "Private key of --tls-cert-file.")
	f.BoolVar(&c.RotateServerCertificates, "rotate-server-certificates", c.RotateServerCertificates,
		"Without --tls-cert-file: request the serving certificate from the cluster (signer kubernetes.io/kubelet-serving) and renew it; otherwise one is self-signed under --root-dir/pki.")
	f.StringVar(&authn.X509.ClientCAFile, "client-ca-file", authn.X509.ClientCAFile,
		"CA bundle that verifies node API client certificates (the API server's --kubelet-client-certificate); read again when it changes.")
	f.BoolVar(authn.Anonymous.Enabled, "anonymous-auth", *authn.Anonymous.Enabled,
		"Let node API requests without credentials through as system:anonymous (still authorised by the API server).")
	f.BoolVar(authn.Webhook.Enabled, "authentication-token-webhook", *authn.Webhook.Enabled, "Accept bearer tokens on the node API, checked by TokenReview.")
	for _, name := range []string{"node-ip", "address", "port", "tls-cert-file", "tls-private-key-file", "rotate-server-certificates",
		"client-ca-file", "anonymous-auth", "authentication-token-webhook"} {
		add(groupNodeAPI, "--"+name, name)
	}
	f.BoolVar(c.EnableProfilingHandler, "enable-profiling-handler", *c.EnableProfilingHandler,
		"Serve Go's profiles under /debug/pprof/ on the node API, to callers allowed get on nodes/proxy.")
	add(groupNodeAPI, "enableProfilingHandler (config file)", "enable-profiling-handler")
	f.BoolVar(&c.EnableContentionProfiling, "contention-profiling", c.EnableContentionProfiling,
		"Record where goroutines block (block profile), with --enable-profiling-handler.")
	add(groupNodeAPI, "--contention-profiling", "contention-profiling")
}

// options merges the config file (if any) under the flags given and returns
// the agent's options and kubeconfig path.
func (fl *agentFlags) options(f *pflag.FlagSet) (app.Options, string, error) {
	if err := fl.loadFiles(f); err != nil {
		return app.Options{}, "", err
	}
	c := fl.cfg.MirrorletConfiguration
	if f.Changed("manifest-url-header") {
		h, err := app.ParseHeaders(fl.headers)
		if err != nil {
			return app.Options{}, "", err
		}
		c.StaticPodURLHeader = h
	}
	if f.Changed("node-labels") {
		c.NodeLabels = fl.nodeLabels
	}
	if errs := config.Validate(c); len(errs) > 0 {
		return app.Options{}, "", fmt.Errorf("invalid settings: %w", errs.ToAggregate())
	}
	return app.Options{
		NodeName: c.NodeName, PodManifestPath: c.StaticPodPath, FileCheckFrequency: c.FileCheckFrequency.Duration,
		ManifestURL: c.StaticPodURL, ManifestURLHeader: c.StaticPodURLHeader, ManifestURLCAFile: c.StaticPodURLCAFile,
		HTTPCheckFrequency: c.HTTPCheckFrequency.Duration, RuntimeEndpoint: c.ContainerRuntimeEndpoint,
		RootDir: c.RootDir, PodLogsDir: c.PodLogsDir, RevisionHistoryLimit: int(*c.RevisionHistoryLimit),
		RuntimeRequestTimeout: c.RuntimeRequestTimeout.Duration, ResyncPeriod: c.SyncFrequency.Duration, NodeLabels: c.NodeLabels, NoRegisterNode: !*c.RegisterNode,
		HealthzBindAddress: c.HealthzBindAddress, MetricsBindAddress: c.MetricsBindAddress,
		NodeIP: c.NodeIP,
		NodeAPI: app.NodeAPIOptions{
			Address: c.Address, Port: int(*c.Port), TLSCertFile: c.TLSCertFile, TLSPrivateKeyFile: c.TLSPrivateKeyFile,
			RotateServerCertificates: c.RotateServerCertificates, ClientCAFile: c.Authentication.X509.ClientCAFile,
			AnonymousAuth: *c.Authentication.Anonymous.Enabled, WebhookAuth: *c.Authentication.Webhook.Enabled,
			EnableProfilingHandler: *c.EnableProfilingHandler, EnableContentionProfiling: c.EnableContentionProfiling,
		},
		KubeconfigPath: c.Kubeconfig, AllowInsecureManifestPermissions: c.AllowInsecureManifestPermissions,
		ManifestURLAllowHTTP: c.StaticPodURLAllowHTTP, RotateCertificates: c.RotateCertificates,
	}, c.Kubeconfig, nil
}

// loadFiles loads --config and --from-kubelet-config, then applies the
// flags given on the command line again on top of them.
func (fl *agentFlags) loadFiles(f *pflag.FlagSet) error {
	if fl.configFile == "" && fl.kubeletCfg == "" {
		return nil
	}
	given := map[string]string{}
	f.Visit(func(pf *pflag.Flag) {
		if _, isSlice := pf.Value.(pflag.SliceValue); !isSlice && pf.Value.Type() != "stringToString" {
			given[pf.Name] = pf.Value.String()
		}
	})
	file := config.Default()
	if fl.configFile != "" {
		var err error
		if file, err = config.Load(fl.configFile); err != nil {
			return err
		}
	}
	if fl.kubeletCfg != "" {
		if err := config.FromKubelet(fl.kubeletCfg, file); err != nil {
			return err
		}
	}
	*fl.cfg.MirrorletConfiguration = *file
	// The flags point into the configuration: setting them again puts the
	// command line on top of the file.
	for name, value := range given {
		if err := f.Set(name, value); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	return nil
}

// groupedUsage prints flags by purpose, naming each one's kubelet flag.
func groupedUsage(cmd *cobra.Command) error {
	// Subcommands inherit the usage function: they get cobra's own.
	if cmd.HasParent() {
		return (&cobra.Command{Use: cmd.Use}).UsageFunc()(cmd)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  %s\n", cmd.UseLine())
	if cmd.HasAvailableSubCommands() {
		b.WriteString("\nCommands:\n")
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(&b, "  %-12s %s\n", sub.Name(), sub.Short)
			}
		}
	}
	for _, group := range []string{groupSources, groupNode, groupRuntime, groupNodeAPI, groupServe} {
		fs := pflag.NewFlagSet(group, pflag.ContinueOnError)
		cmd.Flags().VisitAll(func(pf *pflag.Flag) {
			if g := pf.Annotations["group"]; len(g) == 1 && g[0] == group {
				copied := *pf
				if k := pf.Annotations["kubelet"]; len(k) == 1 {
					copied.Usage += " (kubelet: " + k[0] + ")"
				}
				fs.AddFlag(&copied)
			}
		})
		fmt.Fprintf(&b, "\n%s:\n%s", group, fs.FlagUsages())
	}
	b.WriteString("\nUse \"mirrorlet [command] --help\" for more about a command.\n")
	_, err := fmt.Fprint(cmd.OutOrStderr(), b.String())
	return err
}
