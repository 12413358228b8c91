package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
)

func newStatusCommand() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List every static pod with its runtime state, mirror state and last error (local, no API server needed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := fetchStatus(addr)
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().StringVar(&addr, "healthz-bind-address", "127.0.0.1:10348", "The running mirrorlet's --healthz-bind-address.")
	return cmd
}

func fetchStatus(addr string) (*app.StatusReport, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return nil, fmt.Errorf("asking the local mirrorlet at %s (is it running, with this --healthz-bind-address?): %w", addr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mirrorlet at %s answered %s", addr, resp.Status)
	}
	var rep app.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("reading status from %s: %w", addr, err)
	}
	return &rep, nil
}

func printStatus(w io.Writer, rep *app.StatusReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "NODE %s\nPOD\tSOURCE\tRUNTIME\tMIRROR\tPROBLEM\n", rep.Node)
	for _, p := range rep.Pods {
		problem := "-"
		if len(p.Problems) > 0 {
			problem = p.Problems[0]
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Source, p.Runtime, p.Mirror, problem)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range rep.Pods {
		if p.Pinned != "" {
			_, _ = fmt.Fprintf(w, "pinned: %s runs revision %s (%s)\n", p.Name, p.Revision, p.Pinned)
		}
	}
	for _, p := range rep.Problems {
		_, _ = fmt.Fprintf(w, "not loaded: %s\n", p)
	}
	return nil
}
