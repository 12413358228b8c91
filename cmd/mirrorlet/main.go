package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
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
	return newAgentCommand(newAgentFlags())
}

func newAgentCommand(fl *agentFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "mirrorlet",
		Short:         "Run Kubernetes static pods on this node, with read-only mirror pods in the API server",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, kubeconfig, err := fl.options(cmd.Flags())
			if err != nil {
				return err
			}
			opts.Log = zap.New(zap.UseFlagOptions(&fl.zap))
			ctrl.SetLogger(opts.Log)
			// client-go and apiserver libraries (certificate manager, CA file
			// reloads) log through klog: the same logger.
			klog.SetLogger(opts.Log)
			if opts.RestConfig, err = loadKubeconfig(kubeconfig); err != nil {
				return err
			}
			fl.cfg.limitClient(opts.RestConfig)
			ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer cancel()
			opts.Log.Info("Starting mirrorlet", "version", app.Version, "node", opts.NodeName,
				"manifests", opts.PodManifestPath, "manifestURL", opts.ManifestURL)
			return app.Run(ctx, opts)
		},
	}
	fl.bind(cmd)
	cmd.AddCommand(newVersionCommand(), newValidateCommand(), newStatusCommand(), newLogsCommand(), newConfigCommand(),
		newHistoryCommand(), newRollbackCommand())
	return cmd
}

func loadKubeconfig(path string) (*rest.Config, error) {
	if path == "" {
		return nil, errors.New("a kubeconfig is required (--kubeconfig or the config file's kubeconfig)")
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
