package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app"
	"github.com/mirrorlet/mirrorlet/manifest/revisions"
)

func newRollbackCommand() *cobra.Command {
	var o podFlags
	var to int64
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rollback POD [--to-revision N]",
		Short: "Run an earlier revision of a static pod until its manifest changes (local, no API server needed)",
		Long: "rollback asks the running mirrorlet (through a request file under --root-dir/revisions, so it needs\n" +
			"the rights mirrorlet's root directory asks for) to run an earlier revision of a static pod and keep it\n" +
			"pinned until the manifest changes; the manifest file is not rewritten. Without --to-revision, the\n" +
			"revision before the running one. Rolling back to the manifest's own revision ends a pin.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, key, err := o.history(cmd.Flags(), args[0])
			if err != nil {
				return err
			}
			dir := app.RevisionsDir(o.rootDir)
			if err := revisions.WriteRequest(dir, key, revisions.Request{Key: key.String(), Revision: to}); err != nil {
				return err
			}
			res, err := awaitResult(cmd.Context(), dir, key, timeout)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "%s: revision %d runs until the manifest changes\n", key, res.Revision)
			return nil
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().Int64Var(&to, "to-revision", 0, "The revision to run (see mirrorlet history); 0: the one before the running one.")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the running mirrorlet to answer.")
	return cmd
}

// awaitResult waits for mirrorlet's answer to the request of key; on a
// timeout it withdraws the request, so a later mirrorlet does not act on it.
func awaitResult(ctx context.Context, dir string, key types.NamespacedName, timeout time.Duration) (revisions.Result, error) {
	var res revisions.Result
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		r, ok, err := revisions.TakeResult(dir, key)
		res = r
		return ok, err
	})
	if err != nil {
		_ = revisions.WithdrawRequest(dir, key)
		return res, fmt.Errorf("mirrorlet did not answer within %s (is it running, with this --root-dir?): %w", timeout, err)
	}
	if res.Error != "" {
		return res, fmt.Errorf("mirrorlet refused the rollback: %s", res.Error)
	}
	return res, nil
}
