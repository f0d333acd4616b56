package runccli

import (
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime"
)

func killCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "kill [flags] <container-id> [signal]",
		Short: "kill sends the specified signal (default: SIGTERM) to the container's init process",
		Args:  requireArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = runtime.ParseSignal(args[1]); err != nil {
					return err
				}
			}
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			return c.Signal(sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "send the specified signal to all processes inside the container")
	return cmd
}
