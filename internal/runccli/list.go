package runccli

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

func listCmd() *cobra.Command {
	var format string
	var quiet bool
	cmd := &cobra.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "lists containers started by berth-runc with the given root",
		Args:    requireArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := runtime.List(g.root)
			if err != nil {
				return err
			}
			if quiet {
				for _, c := range cs {
					fmt.Println(c.ID())
				}
				return nil
			}
			switch format {
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
				for _, c := range cs {
					st := toStateJSON(c)
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", st.ID, st.Pid, st.Status, st.Bundle, st.Created.Format(time.RFC3339Nano), st.Owner)
				}
				return w.Flush()
			case "json":
				out := make([]stateJSON, 0, len(cs))
				for _, c := range cs {
					out = append(out, toStateJSON(c))
				}
				data, err := json.Marshal(out)
				if err != nil {
					return err
				}
				fmt.Printf("%s\n", data)
				return nil
			}
			return fmt.Errorf("--format %q: must be table or json", format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "select one of: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "display only container IDs")
	return cmd
}
