package runccli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

func psCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [flags] <container-id> [ps options]",
		Short: "ps displays the processes running inside a container",
		Args:  requireArgs(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			pids, err := c.Processes()
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				data, _ := json.Marshal(pids)
				fmt.Printf("%s\n", data)
				return nil
			case "table":
			default:
				return fmt.Errorf("--format %q: must be table or json", format)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			out, err := exec.Command("ps", psArgs...).Output()
			if err != nil {
				return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
			}
			return filterPs(out, pids)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVarP(&format, "format", "f", "table", "select one of: table or json")
	return cmd
}

// filterPs prints ps's header and the lines whose PID column is one of pids.
func filterPs(out []byte, pids []int) error {
	s := bufio.NewScanner(bytes.NewReader(out))
	if !s.Scan() {
		return fmt.Errorf("ps printed nothing")
	}
	header := s.Text()
	col := -1
	for i, f := range strings.Fields(header) {
		if f == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	fmt.Fprintln(os.Stdout, header)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) > col {
			if p, err := strconv.Atoi(f[col]); err == nil && want[p] {
				fmt.Fprintln(os.Stdout, s.Text())
			}
		}
	}
	return nil
}
