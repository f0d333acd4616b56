// Package cli is the `berth` command line: Docker's commands and flags over
// berth's engine, image store and networking, with no daemon.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/runtime"
)

// Version is berth's version, set at build time.
var Version = "0.2.0-dev"

// globals are the flags every command takes.
type globals struct {
	root, runDir, driver string
	debug                bool
	noImages             bool // a supervisor callback: no image store needed
	insecure             bool // pull/push --insecure

	be *backend
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode makes an error that exits with code (and prints err if set).
func exitCode(code int, err error) error { return &exitError{code: code, err: err} }

// Main runs the berth command line and returns the exit code.
func Main(args []string) int {
	runtime.Trace("cli: main")
	g := &globals{}
	root := newRoot(g, args)
	runtime.Trace("cli: commands built")
	root.SetArgs(args)
	ctx, cancel := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer cancel()
	// A reader that goes away (`berth export | head`) must not kill us in
	// the middle of work that holds mounts or locks: writes fail with
	// EPIPE instead, the work unwinds, and we exit as a process killed by
	// SIGPIPE would.
	signal.Ignore(unix.SIGPIPE)
	err := root.ExecuteContext(ctx)
	if errors.Is(err, unix.EPIPE) {
		if g.be != nil {
			g.be.close()
		}
		return 128 + int(unix.SIGPIPE)
	}
	if g.be != nil {
		g.be.close()
	}
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "berth:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "berth:", err)
	return engineStartCode(err)
}

func newRoot(g *globals, args []string) *cobra.Command {
	root := &cobra.Command{
		Use:               "berth [OPTIONS] COMMAND",
		Short:             "A fast, daemonless container engine",
		Long:              "berth runs containers the way Docker does, with no daemon: every command works on the state under --root.",
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           Version,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitCode(125, fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath()))
	})
	fl := root.PersistentFlags()
	fl.StringVar(&g.root, "root", envOr("BERTH_ROOT", engine.DefaultRoot), "Root directory of persistent state")
	fl.StringVar(&g.runDir, "run-dir", envOr("BERTH_RUN_DIR", engine.DefaultRunDir), "Directory of run-time state")
	fl.StringVar(&g.driver, "storage-driver", os.Getenv("BERTH_STORAGE_DRIVER"), "Snapshotter: overlay or vfs (default: overlay when supported)")
	fl.BoolVarP(&g.debug, "debug", "D", false, "Enable debug output")
	root.SetVersionTemplate("berth version {{.Version}}\n")

	root.AddGroup(&cobra.Group{ID: "common", Title: "Common Commands:"}, &cobra.Group{ID: "management", Title: "Management Commands:"}, &cobra.Group{ID: "commands", Title: "Commands:"})
	// Only the command asked for is built (building all of them costs
	// milliseconds, paid by every container start through the
	// supervisor's callbacks); help and unknown commands get them all.
	want := firstCommand(args)
	found := false
	for _, e := range commandTable {
		if e.name == want {
			found = true
		}
	}
	for _, e := range commandTable {
		if found && e.name != want {
			continue
		}
		c := e.make(g)
		if e.group == "" {
			c.Hidden = true
		} else {
			c.GroupID = e.group
		}
		root.AddCommand(c)
	}
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// engine opens the backend on first use.
func (g *globals) engine() (*engine.Engine, error) {
	be, err := g.backend()
	if err != nil {
		return nil, err
	}
	return be.eng, nil
}

func (g *globals) images() (*image.Service, error) {
	be, err := g.backend()
	if err != nil {
		return nil, err
	}
	return be.images, nil
}

func (g *globals) backend() (*backend, error) {
	if g.be != nil {
		return g.be, nil
	}
	be, err := openBackend(g)
	if err != nil {
		return nil, err
	}
	g.be = be
	return be, nil
}

// callbackCmds are what the supervisor runs: `__start`, `__cleanup`,
// `__health`. They are not for users.
func callbackCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{
		{
			Use:  "__start ID CONSOLE-SOCKET PID-FILE",
			Args: cobra.ExactArgs(3),
			RunE: func(cmd *cobra.Command, args []string) error {
				g.noImages = true
				e, err := g.engine()
				if err != nil {
					return err
				}
				err = e.StartCallback(cmd.Context(), args[0], args[1], args[2])
				if err != nil {
					return exitCode(engine.StartExitCode(err), err)
				}
				return nil
			},
		},
		{
			Use:  "__cleanup ID CODE",
			Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				g.noImages = true
				e, err := g.engine()
				if err != nil {
					return err
				}
				code, err := strconv.Atoi(args[1])
				if err != nil {
					return fmt.Errorf("bad exit code %q", args[1])
				}
				return e.CleanupCallback(cmd.Context(), args[0], code)
			},
		},
		{
			Use:  "__dns",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				g.noImages = true
				e, err := g.engine()
				if err != nil {
					return err
				}
				m, err := e.Network()
				if err != nil {
					return err
				}
				return m.RunDNS(cmd.Context())
			},
		},
		{
			Use:  "__health ID",
			Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				g.noImages = true
				e, err := g.engine()
				if err != nil {
					return err
				}
				return e.HealthCheck(cmd.Context(), args[0])
			},
		},
	}
}

// engineStartCode is the exit code for err: a start error's own, else 125.
func engineStartCode(err error) int {
	var se *engine.StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return 125
}

var _ io.Writer

type commandEntry struct {
	group string // "" for the supervisor's callbacks (hidden)
	name  string
	make  func(*globals) *cobra.Command
}

var commandTable = []commandEntry{
	{"common", "run", runCmd}, {"common", "exec", execCmd}, {"common", "ps", psCmd}, {"common", "images", buildLikeImagesCmd},
	{"common", "pull", pullCmd}, {"common", "push", pushCmd}, {"common", "login", loginCmd}, {"common", "logout", logoutCmd},
	{"common", "version", versionCmd}, {"common", "info", infoCmd},
	{"management", "container", containerCmd}, {"management", "image", imageCmd}, {"management", "network", networkCmd},
	{"management", "volume", volumeCmd}, {"management", "system", systemCmd},
	{"commands", "attach", attachCmd}, {"commands", "commit", commitCmd}, {"commands", "cp", cpCmd}, {"commands", "create", createCmd},
	{"commands", "diff", diffCmd}, {"commands", "events", eventsCmd}, {"commands", "export", exportCmd}, {"commands", "history", historyCmd},
	{"commands", "import", importCmd}, {"commands", "inspect", inspectCmd}, {"commands", "kill", killCmd}, {"commands", "load", loadCmd},
	{"commands", "logs", logsCmd}, {"commands", "pause", pauseCmd}, {"commands", "port", portCmd}, {"commands", "rename", renameCmd},
	{"commands", "restart", restartCmd}, {"commands", "rm", rmCmd}, {"commands", "rmi", rmiCmd}, {"commands", "save", saveCmd},
	{"commands", "start", startCmd}, {"commands", "stats", statsCmd}, {"commands", "stop", stopCmd}, {"commands", "tag", tagCmd},
	{"commands", "top", topCmd}, {"commands", "unpause", unpauseCmd}, {"commands", "update", updateCmd}, {"commands", "wait", waitCmd},
	{"", "__start", func(g *globals) *cobra.Command { return callbackCmds(g)[0] }},
	{"", "__cleanup", func(g *globals) *cobra.Command { return callbackCmds(g)[1] }},
	{"", "__dns", func(g *globals) *cobra.Command { return callbackCmds(g)[2] }},
	{"", "__health", func(g *globals) *cobra.Command { return callbackCmds(g)[3] }},
}

// firstCommand is the command name in args: the first argument that is
// not a global flag or a global flag's value.
func firstCommand(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--root" || a == "--run-dir" || a == "--storage-driver":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}
