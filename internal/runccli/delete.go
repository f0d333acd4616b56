package runccli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

func deleteCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "delete [flags] <container-id>",
		Aliases: []string{"rm"},
		Short:   "delete any resources held by the container",
		Args:    requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				if force && errors.Is(err, runtime.ErrNotExist) {
					return nil
				}
				return err
			}
			return c.Delete(force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "forcibly delete the container if it is still running (uses SIGKILL)")
	return cmd
}
