package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/config"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

// podFlags find a static pod's revisions on this node's disk.
type podFlags struct {
	configFile, rootDir, nodeName, namespace string
}

func (o *podFlags) bind(f *pflag.FlagSet) {
	host, _ := os.Hostname()
	f.StringVar(&o.configFile, "config", "", "The running mirrorlet's MirrorletConfiguration file: its rootDir and nodeName.")
	f.StringVar(&o.rootDir, "root-dir", config.Default().RootDir, "The running mirrorlet's --root-dir.")
	f.StringVar(&o.nodeName, "node-name", strings.ToLower(host), "The running mirrorlet's --node-name (mirror names are <pod>-<node>).")
	f.StringVarP(&o.namespace, "namespace", "n", "default", "Namespace of the pod.")
}

// history finds the revisions of pod: the mirror name, or the static pod's
// own name on this node.
func (o *podFlags) history(f *pflag.FlagSet, pod string) (revisions.History, types.NamespacedName, error) {
	if o.configFile != "" {
		c, err := config.Load(o.configFile)
		if err != nil {
			return revisions.History{}, types.NamespacedName{}, err
		}
		if !f.Changed("root-dir") {
			o.rootDir = c.RootDir
		}
		if !f.Changed("node-name") && c.NodeName != "" {
			o.nodeName = c.NodeName
		}
	}
	dir := app.RevisionsDir(o.rootDir)
	var firstErr error
	for _, name := range []string{pod, pod + "-" + strings.ToLower(o.nodeName)} {
		key := types.NamespacedName{Namespace: o.namespace, Name: name}
		h, err := revisions.ReadHistory(dir, key)
		if err == nil {
			return h, key, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if errors.Is(firstErr, os.ErrNotExist) {
		return revisions.History{}, types.NamespacedName{}, fmt.Errorf("no revisions of pod %s/%s under %s (is --root-dir the running mirrorlet's?)", o.namespace, pod, dir)
	}
	return revisions.History{}, types.NamespacedName{}, firstErr
}

func newHistoryCommand() *cobra.Command {
	var o podFlags
	var revision int64
	cmd := &cobra.Command{
		Use:   "history POD",
		Short: "List the revisions of a static pod kept on this node (local, no API server needed)",
		Long: "history lists the revisions mirrorlet keeps of a static pod under --root-dir/revisions: every spec\n" +
			"change is one. POD is the mirror name (<pod>-<node>) or the static pod's own name. --revision N\n" +
			"prints the manifest of revision N.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, _, err := o.history(cmd.Flags(), args[0])
			if err != nil {
				return err
			}
			if revision != 0 {
				return printRevision(cmd.OutOrStdout(), h, revision)
			}
			return printHistory(cmd.OutOrStdout(), h)
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().Int64Var(&revision, "revision", 0, "Print the manifest of this revision.")
	return cmd
}

func printHistory(w io.Writer, h revisions.History) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "POD %s\nREVISION\tCREATED\tHASH\tORIGIN\tSTATE\n", h.Key)
	running := h.Running()
	for _, r := range h.Revisions {
		state := revisionState(&r, h.Pin, running != nil && running.Number == r.Number)
		_, _ = fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Number, r.Created.Format(time.RFC3339), shortHash(r.Hash), r.Origin, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if h.Pin != nil {
		_, _ = fmt.Fprintf(w, "pinned: revision %d runs (%s: %s)\n", h.Pin.Revision, h.Pin.Reason, h.Pin.Message)
	}
	return nil
}

func revisionState(r *revisions.Revision, pin *revisions.Pin, running bool) string {
	var parts []string
	switch {
	case running && pin != nil:
		parts = append(parts, "running (pinned)")
	case running:
		parts = append(parts, "running")
	}
	switch {
	case r.Failed != "":
		parts = append(parts, "rolled back: "+r.Failed)
	case r.Settled:
		parts = append(parts, "ready, settled")
	case r.Ready:
		parts = append(parts, "was ready")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func shortHash(h string) string { return h[:min(12, len(h))] }

// printRevision prints the manifest of revision n as it was read (or the
// pod as mirrorlet ran it, when it came from a PodList).
func printRevision(w io.Writer, h revisions.History, n int64) error {
	r := h.Number(n)
	if r == nil {
		return fmt.Errorf("%s has no revision %d", h.Key, n)
	}
	data := r.Content
	if len(data) == 0 {
		var err error
		if data, err = yaml.Marshal(r.Pod); err != nil {
			return fmt.Errorf("printing revision %d: %w", n, err)
		}
	}
	_, err := w.Write(data)
	return err
}
