package main

import (
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/config"
	"github.com/mirrorlet/mirrorlet/runtime/podlogs"
)

type logsOptions struct {
	configFile, logsDir, nodeName string
	namespace, container          string
	follow, previous, timestamps  bool
	tail                          int
}

func newLogsCommand() *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER]",
		Short: "Print a static pod container's logs from this node's disk (local, no API server needed)",
		Long: "logs prints a container's logs as kubectl logs does, reading the files the container runtime\n" +
			"writes under --pod-logs-dir. POD is the mirror name (<pod>-<node>) or the static pod's own name.\n" +
			"With --config, --pod-logs-dir and --node-name default to the file's podLogsDir and nodeName.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	f := cmd.Flags()
	host, _ := os.Hostname()
	f.StringVar(&o.configFile, "config", "", "The running mirrorlet's MirrorletConfiguration file: its podLogsDir and nodeName.")
	f.StringVar(&o.logsDir, "pod-logs-dir", config.Default().PodLogsDir, "The running mirrorlet's --pod-logs-dir.")
	f.StringVar(&o.nodeName, "node-name", strings.ToLower(host), "The running mirrorlet's --node-name (mirror names are <pod>-<node>).")
	f.StringVarP(&o.namespace, "namespace", "n", "default", "Namespace of the pod.")
	f.StringVarP(&o.container, "container", "c", "", "Container name; may be left out when the pod has one container.")
	f.BoolVarP(&o.follow, "follow", "f", false, "Keep printing new lines, through container restarts, until interrupted or the pod is removed.")
	f.BoolVarP(&o.previous, "previous", "p", false, "Print the logs of the container's previous attempt.")
	f.BoolVar(&o.timestamps, "timestamps", false, "Prefix each line with its time (RFC 3339).")
	f.IntVar(&o.tail, "tail", -1, "Number of most recent lines to print; -1 prints all.")
	return cmd
}

func (o *logsOptions) run(cmd *cobra.Command, pod string) error {
	if err := o.loadConfig(cmd.Flags()); err != nil {
		return err
	}
	c, err := podlogs.Find(podlogs.Query{LogsDir: o.logsDir, Namespace: o.namespace, Pod: pod,
		Node: strings.ToLower(o.nodeName), Container: o.container})
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	return podlogs.Print(ctx, cmd.OutOrStdout(), c, podlogs.Options{
		Previous: o.previous, Timestamps: o.timestamps, Tail: o.tail, Follow: o.follow})
}

// loadConfig takes podLogsDir and nodeName from --config, unless given as
// flags.
func (o *logsOptions) loadConfig(f *pflag.FlagSet) error {
	if o.configFile == "" {
		return nil
	}
	c, err := config.Load(o.configFile)
	if err != nil {
		return err
	}
	if !f.Changed("pod-logs-dir") {
		o.logsDir = c.PodLogsDir
	}
	if !f.Changed("node-name") && c.NodeName != "" {
		o.nodeName = c.NodeName
	}
	return nil
}
