// Package runccli is berth-runc's command line: runc's verbs and flags, so
// that callers written for runc (containerd's shim, dockerd, Podman's conmon)
// work unchanged. Each verb lives in its own file, checks its arguments and
// calls package runtime; this package is the only place that prints.
package runccli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

// Version is set at build time.
var Version = "0.1.0-dev"

type globals struct {
	root          string
	log           string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
	criu          string
	logOut        io.Writer
}

var g globals

// exitError carries a specific exit code without a message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	runtime.Trace("main")
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	logError(err)
	return 1
}

func logError(err error) {
	msg := err.Error()
	fmt.Fprintln(os.Stderr, "berth-runc:", msg)
	if g.logOut != nil && g.logOut != os.Stderr {
		writeLog("error", msg)
	}
}

func writeLog(level, msg string) {
	if g.logOut == nil {
		return
	}
	if g.logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": time.Now().Format(time.RFC3339Nano)})
		fmt.Fprintf(g.logOut, "%s\n", b)
		return
	}
	fmt.Fprintf(g.logOut, "time=%q level=%s msg=%q\n", time.Now().Format(time.RFC3339Nano), level, msg)
}

func debugf(format string, a ...any) {
	if g.debug {
		writeLog("debug", fmt.Sprintf(format, a...))
	}
}

func defaultRoot() string {
	if os.Geteuid() != 0 {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			return filepath.Join(d, "berth-runc")
		}
	}
	return "/run/berth-runc"
}

func newRoot() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "berth-runc",
		Short:         "berth's OCI container runtime (runc-compatible)",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch g.logFormat {
			case "text", "json":
			default:
				return fmt.Errorf("--log-format %q: must be text or json", g.logFormat)
			}
			g.logOut = os.Stderr
			if g.log != "" {
				f, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
				if err != nil {
					return fmt.Errorf("--log %s: %w", g.log, err)
				}
				g.logOut = f
			}
			if g.systemdCgroup {
				return errors.New("--systemd-cgroup: the systemd cgroup driver is not supported yet; use cgroupfs paths")
			}
			root, err := filepath.Abs(g.root)
			if err != nil {
				return err
			}
			g.root = root
			runtime.Warn = func(format string, a ...any) { writeLog("warning", fmt.Sprintf(format, a...)) }
			debugf("berth-runc %s", strings.Join(os.Args[1:], " "))
			return nil
		},
	}
	cmd.SetVersionTemplate(fmt.Sprintf("berth-runc version %s\nspec: %s\n", Version, specVersion()))
	f := cmd.PersistentFlags()
	f.StringVar(&g.root, "root", defaultRoot(), "root directory for storage of container state (this should be located in tmpfs)")
	f.StringVar(&g.log, "log", "", "set the log file to write runtime logs to (default is stderr)")
	f.StringVar(&g.logFormat, "log-format", "text", "set the log format ('text' (default), or 'json')")
	f.BoolVar(&g.debug, "debug", false, "enable debug logging")
	f.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "enable systemd cgroup support (not supported yet)")
	f.StringVar(&g.rootless, "rootless", "auto", "ignore cgroup permission errors ('true', 'false', or 'auto')")
	f.StringVar(&g.criu, "criu", "criu", "path to the criu binary (checkpoint/restore is not supported)")
	cmd.AddCommand(createCmd(), startCmd(), runCmd(), stateCmd(), killCmd(), deleteCmd(), listCmd(),
		execCmd(), psCmd(), specCmd(), featuresCmd(), pauseCmd(), resumeCmd(), updateCmd(), eventsCmd())
	return cmd
}

// requireID checks the argument count: the container id and exactly n more.
func requireArgs(min, max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min {
			if min == 1 {
				return fmt.Errorf("%s: requires a container id", cmd.Name())
			}
			return fmt.Errorf("%s: requires at least %d arguments", cmd.Name(), min)
		}
		if max >= 0 && len(args) > max {
			return fmt.Errorf("%s: too many arguments (want at most %d, got %d)", cmd.Name(), max, len(args))
		}
		return nil
	}
}
