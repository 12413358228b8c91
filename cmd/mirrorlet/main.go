// Command mirrorlet runs Kubernetes static pods on a node and keeps a
// read-only mirror Pod for each in the API server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mirrorlet:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "version" {
		fmt.Printf("mirrorlet %s (commit %s, built %s)\n", app.Version, app.GitCommit, app.BuildDate)
		return nil
	}
	fs := flag.NewFlagSet("mirrorlet", flag.ContinueOnError)
	var opts app.Options
	var kubeconfig string
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig file for the API server (kubelet: --kubeconfig).")
	fs.StringVar(&opts.NodeName, "node-name", "", "Name of this node; default: the hostname, lower-cased (kubelet: --hostname-override).")
	fs.StringVar(&opts.PodManifestPath, "pod-manifest-path", "", "Directory of static pod manifests (kubelet: --pod-manifest-path).")
	fs.DurationVar(&opts.FileCheckFrequency, "file-check-frequency", 20*time.Second,
		"Period of full rescans of the manifest directory; changes are also seen at once through inotify (kubelet: --file-check-frequency).")
	fs.StringVar(&opts.RuntimeEndpoint, "container-runtime-endpoint", "unix:///run/containerd-mirrorlet/containerd.sock",
		"CRI endpoint of the container runtime, or fake:// for an in-memory runtime (kubelet: --container-runtime-endpoint).")
	fs.StringVar(&opts.HealthzBindAddress, "healthz-bind-address", "127.0.0.1:10348", "Address of /healthz and /readyz; 0 disables.")
	fs.StringVar(&opts.MetricsBindAddress, "metrics-bind-address", "127.0.0.1:10349", "Address of Prometheus /metrics; 0 disables.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts.Log = zap.New(zap.UseFlagOptions(&zapOpts))
	ctrl.SetLogger(opts.Log)
	if kubeconfig == "" {
		return fmt.Errorf("--kubeconfig is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "mirrorlet/" + app.Version
	opts.RestConfig = cfg
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	opts.Log.Info("Starting mirrorlet", "version", app.Version, "node", opts.NodeName, "manifests", opts.PodManifestPath)
	return app.Run(ctx, opts)
}
