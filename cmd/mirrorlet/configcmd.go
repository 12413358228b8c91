package main

import (
	"github.com/spf13/cobra"

	"github.com/mirrorlet/mirrorlet/cmd/mirrorlet/config"
)

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with MirrorletConfiguration files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "print-defaults",
		Short: "Print a complete MirrorletConfiguration with every default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := config.Marshal(config.Default())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})
	return cmd
}
