// Command mirrorlet runs Kubernetes static pods on a node and keeps a
// read-only mirror Pod for each in the API server.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		var ve *validationError
		if !errors.As(err, &ve) {
			fmt.Fprintln(os.Stderr, "mirrorlet:", err)
		}
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	var opts app.Options
	var kubeconfig string
	var headers []string
	zapOpts := zap.Options{}
	cmd := &cobra.Command{
		Use:           "mirrorlet",
		Short:         "Run Kubernetes static pods on this node, with read-only mirror pods in the API server",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Log = zap.New(zap.UseFlagOptions(&zapOpts))
			ctrl.SetLogger(opts.Log)
			var err error
			if opts.ManifestURLHeader, err = app.ParseHeaders(headers); err != nil {
				return err
			}
			if opts.RestConfig, err = loadKubeconfig(kubeconfig); err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			opts.Log.Info("Starting mirrorlet", "version", app.Version, "node", opts.NodeName,
				"manifests", opts.PodManifestPath, "manifestURL", opts.ManifestURL)
			return app.Run(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig file for the API server (kubelet: --kubeconfig).")
	f.StringVar(&opts.NodeName, "node-name", "", "Name of this node; default: the hostname, lower-cased (kubelet: --hostname-override).")
	f.StringVar(&opts.PodManifestPath, "pod-manifest-path", "", "Directory of static pod manifests (kubelet: --pod-manifest-path).")
	f.DurationVar(&opts.FileCheckFrequency, "file-check-frequency", 20*time.Second,
		"Period of full rescans of the manifest directory; changes are also seen at once through inotify (kubelet: --file-check-frequency).")
	f.StringVar(&opts.ManifestURL, "manifest-url", "", "URL of static pods: one Pod or a PodList (kubelet: --manifest-url).")
	f.StringArrayVar(&headers, "manifest-url-header", nil,
		"HTTP headers for --manifest-url, 'Name:Value,Name2:Value2'; repeatable (kubelet: --manifest-url-header).")
	f.StringVar(&opts.ManifestURLCAFile, "manifest-url-ca-file", "", "PEM CA bundle that verifies an HTTPS --manifest-url.")
	f.DurationVar(&opts.HTTPCheckFrequency, "http-check-frequency", 20*time.Second, "Period of --manifest-url fetches (kubelet: --http-check-frequency).")
	f.StringVar(&opts.RuntimeEndpoint, "container-runtime-endpoint", "unix:///run/containerd-mirrorlet/containerd.sock",
		"CRI endpoint of the container runtime, or fake:// for an in-memory runtime (kubelet: --container-runtime-endpoint).")
	f.StringVar(&opts.HealthzBindAddress, "healthz-bind-address", "127.0.0.1:10348", "Address of /healthz and /readyz; 0 disables.")
	f.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", "127.0.0.1:10349", "Address of Prometheus /metrics; 0 disables.")
	logFlags := flag.NewFlagSet("log", flag.ContinueOnError)
	zapOpts.BindFlags(logFlags)
	f.AddGoFlagSet(logFlags)
	cmd.AddCommand(newVersionCommand(), newValidateCommand(), newStatusCommand())
	return cmd
}

func loadKubeconfig(path string) (*rest.Config, error) {
	if path == "" {
		return nil, errors.New("--kubeconfig is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	cfg.UserAgent = "mirrorlet/" + app.Version
	return cfg, nil
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print mirrorlet's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "mirrorlet %s (commit %s, built %s)\n", app.Version, app.GitCommit, app.BuildDate)
		},
	}
}
