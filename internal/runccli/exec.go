package runccli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime"
)

func execCmd() *cobra.Command {
	var (
		processFile, pidFile, cwd, userSpec, consoleSocket string
		env, gids, caps                                    []string
		tty, detach, noNewPrivs                            bool
		preserve                                           int
		apparmor, label, cgroup                            string
		ignorePaused                                       bool
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] <container-id> <command> [command options]",
		Short: "execute new process inside the container",
		Args:  requireArgs(1, -1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cgroup != "" {
				return fmt.Errorf("--cgroup %q: running exec in a sub-cgroup is not supported yet", cgroup)
			}
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			var p *specs.Process
			if processFile != "" {
				data, err := os.ReadFile(processFile)
				if err != nil {
					return fmt.Errorf("--process: %w", err)
				}
				p = &specs.Process{}
				if err := json.Unmarshal(data, p); err != nil {
					return fmt.Errorf("--process %s: not valid JSON: %w", processFile, err)
				}
			} else {
				if len(args) < 2 {
					return fmt.Errorf("exec: requires a command (or --process)")
				}
				base := c.Spec().Process
				cp := *base
				p = &cp
				p.Args = args[1:]
				p.Env = append(append([]string{}, base.Env...), env...)
				p.Terminal = tty
				p.ConsoleSize = nil
				if cwd != "" {
					p.Cwd = cwd
				}
				if userSpec != "" {
					u, err := parseUser(userSpec)
					if err != nil {
						return err
					}
					p.User.UID, p.User.GID = u.UID, u.GID
				}
				for _, s := range gids {
					n, err := strconv.ParseUint(s, 10, 32)
					if err != nil {
						return fmt.Errorf("--additional-gids %q: not a number", s)
					}
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(n))
				}
				if noNewPrivs {
					p.NoNewPrivileges = true
				}
				if len(caps) > 0 && p.Capabilities != nil {
					cp := *p.Capabilities
					for _, c := range caps {
						c = strings.ToUpper(c)
						cp.Bounding = append(cp.Bounding, c)
						cp.Effective = append(cp.Effective, c)
						cp.Permitted = append(cp.Permitted, c)
					}
					p.Capabilities = &cp
				}
				if apparmor != "" {
					p.ApparmorProfile = apparmor
				}
				if label != "" {
					p.SelinuxLabel = label
				}
			}
			var term *terminal
			sock := consoleSocket
			if p.Terminal && sock == "" {
				if detach {
					return fmt.Errorf("exec: --tty with --detach needs --console-socket")
				}
				if term, err = newTerminal(); err != nil {
					return err
				}
				defer term.Close()
				sock = term.socket
			}
			var sigs chan os.Signal
			if !detach {
				sigs = make(chan os.Signal, 32)
				// Registering costs ~0.6 ms (the runtime starts its signal
				// thread): overlap it with the work below.
				go signal.Notify(sigs, forwarded...)
				defer signal.Stop(sigs)
			}
			pid, err := c.Exec(&runtime.ExecOpts{Process: p, ConsoleSocket: sock, PreserveFds: preserveFds(preserve)})
			if err != nil {
				return err
			}
			if pidFile != "" {
				if err := writePidFile(pidFile, pid); err != nil {
					return err
				}
			}
			if detach {
				return nil
			}
			if term != nil {
				if err := term.Attach(); err != nil {
					return err
				}
			}
			code := waitForward(pid, sigs)
			if term != nil {
				term.Wait()
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.StringVarP(&processFile, "process", "p", "", "path to the process.json")
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-TTY")
	fl.BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
	fl.StringVar(&pidFile, "pid-file", "", "specify the file to write the process id to")
	fl.StringArrayVarP(&env, "env", "e", nil, "set environment variables")
	fl.StringVar(&cwd, "cwd", "", "current working directory in the container")
	fl.StringVarP(&userSpec, "user", "u", "", "UID (format: <uid>[:<gid>])")
	fl.StringArrayVarP(&gids, "additional-gids", "g", nil, "additional gids")
	fl.StringVar(&consoleSocket, "console-socket", "", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal")
	fl.IntVar(&preserve, "preserve-fds", 0, "pass N additional file descriptors to the container")
	fl.StringArrayVarP(&caps, "cap", "c", nil, "add a capability to the bounding set for the process")
	fl.BoolVar(&noNewPrivs, "no-new-privs", false, "set the no new privileges value for the process")
	fl.StringVar(&apparmor, "apparmor", "", "set the apparmor profile for the process")
	fl.StringVar(&label, "process-label", "", "set the asm process label for the process commonly used with selinux")
	fl.StringVar(&cgroup, "cgroup", "", "run the process in an (existing) sub-cgroup(s)")
	fl.BoolVar(&ignorePaused, "ignore-paused", false, "allow exec in a paused container")
	return cmd
}

func parseUser(s string) (specs.User, error) {
	var u specs.User
	parts := strings.SplitN(s, ":", 2)
	uid, err := strconv.ParseUint(parts[0], 10, 32)
	if err != nil {
		return u, fmt.Errorf("--user %q: uid must be a number", s)
	}
	u.UID = uint32(uid)
	if len(parts) == 2 {
		gid, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			return u, fmt.Errorf("--user %q: gid must be a number", s)
		}
		u.GID = uint32(gid)
	}
	return u, nil
}
