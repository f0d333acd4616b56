package runccli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/atomicfile"
	"github.com/berth-project/berth/runtime"
)

type createFlags struct {
	bundle        string
	pidFile       string
	consoleSocket string
	noPivot       bool
	noNewKeyring  bool
	preserveFds   int
}

func (f *createFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.bundle, "bundle", "b", "", "path to the root of the bundle directory, defaults to the current directory")
	fl.StringVar(&f.pidFile, "pid-file", "", "specify the file to write the process id to")
	fl.StringVar(&f.consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal")
	fl.BoolVar(&f.noPivot, "no-pivot", false, "do not use pivot root to jail process inside rootfs")
	fl.BoolVar(&f.noNewKeyring, "no-new-keyring", false, "do not create a new session keyring for the container")
	fl.IntVar(&f.preserveFds, "preserve-fds", 0, "pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)")
}

func createCmd() *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [flags] <container-id>",
		Short: "create a container",
		Args:  requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := doCreate(args[0], &f)
			return err
		},
	}
	f.register(cmd)
	return cmd
}

// loadSpec reads bundle/config.json.
func loadSpec(bundle string) (string, *specs.Spec, error) {
	if bundle == "" {
		bundle = "."
	}
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return "", nil, err
	}
	data, err := os.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		return "", nil, fmt.Errorf("bundle %s: read config.json: %w", abs, unwrap(err))
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return "", nil, fmt.Errorf("bundle %s: config.json is not valid JSON: %w", abs, err)
	}
	return abs, &s, nil
}

func unwrap(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func preserveFds(n int) int {
	// LISTEN_FDS (socket activation) are preserved too, as runc does.
	if v, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err == nil && v > 0 {
		n += v
	}
	return n
}

func doCreate(id string, f *createFlags) (*runtime.Container, error) {
	bundle, spec, err := loadSpec(f.bundle)
	if err != nil {
		return nil, err
	}
	if f.preserveFds < 0 {
		return nil, fmt.Errorf("--preserve-fds %d: must not be negative", f.preserveFds)
	}
	c, err := runtime.Create(g.root, id, &runtime.CreateOpts{
		Bundle: bundle, Spec: spec, ConsoleSocket: f.consoleSocket,
		NoPivot: f.noPivot, NoNewKeyring: f.noNewKeyring, PreserveFds: preserveFds(f.preserveFds),
	})
	if err != nil {
		return nil, err
	}
	if f.pidFile != "" {
		if err := writePidFile(f.pidFile, c.Pid()); err != nil {
			c.Delete(true)
			return nil, err
		}
	}
	return c, nil
}

// writePidFile writes pid atomically: readers never see a partial file.
func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(abs, []byte(strconv.Itoa(pid)), 0o644, false); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}
