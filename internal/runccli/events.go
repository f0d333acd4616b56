package runccli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime"
)

func eventsCmd() *cobra.Command {
	var (
		interval time.Duration
		stats    bool
	)
	cmd := &cobra.Command{
		Use:   "events [flags] <container-id>",
		Short: "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
		Long: `events prints the container's events as JSON lines:
{"type":"stats","id":...,"data":{"cpu":...,"memory":...,"pids":...,"blkio":...}}
every --interval, and {"type":"oom","id":...} when the OOM killer acts in the
container, until the container stops. With --stats it prints the
statistics once and exits.`,
		Args: requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return fmt.Errorf("--interval %v: must be positive", interval)
			}
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
			defer stop()
			enc := json.NewEncoder(os.Stdout)
			var werr error
			err = c.Events(ctx, interval, stats, func(e runtime.Event) {
				if werr == nil {
					werr = enc.Encode(e)
				}
			})
			if err != nil {
				return err
			}
			if werr != nil {
				return fmt.Errorf("write event: %w", werr)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "set the stats collection interval")
	cmd.Flags().BoolVar(&stats, "stats", false, "display the container's stats then exit")
	return cmd
}
