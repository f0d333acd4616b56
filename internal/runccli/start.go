package runccli

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

func startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start <container-id>",
		Short: "executes the user defined process in a created container",
		Args:  requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			return c.Start()
		},
	}
}
