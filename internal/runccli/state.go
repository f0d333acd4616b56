package runccli

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

// stateJSON is runc's state output: the OCI state plus rootfs, created and owner.
type stateJSON struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
	ExitStatus  *int              `json:"exitStatus,omitempty"`
}

func toStateJSON(c *runtime.Container) stateJSON {
	st := c.State()
	out := stateJSON{
		OCIVersion: st.Version, ID: st.ID, Pid: st.Pid, Status: string(st.Status), Bundle: st.Bundle,
		Rootfs: c.Rootfs(), Created: c.Created(), Owner: c.Owner(), Annotations: st.Annotations,
	}
	if code, ok := c.ExitStatus(); ok && out.Status == runtime.StatusStopped {
		out.ExitStatus = &code
	}
	return out
}

func stateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "state <container-id>",
		Short: "output the state of a container",
		Args:  requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(toStateJSON(c), "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stdout, "%s\n", data)
			return nil
		},
	}
}
