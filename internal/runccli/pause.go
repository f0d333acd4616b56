package runccli

import (
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

func pauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pause <container-id>",
		Short: "pause suspends all processes inside the container",
		Args:  requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			return c.Pause()
		},
	}
}

func resumeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resume <container-id>",
		Short: "resumes all processes that have been previously paused",
		Args:  requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			return c.Resume()
		},
	}
}
