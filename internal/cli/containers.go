package cli

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/engine"
)

func containerCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "container", Short: "Manage containers"}
	ls := psCmd(g)
	ls.Use, ls.Aliases = "ls [OPTIONS]", []string{"ps", "list"}
	c.AddCommand(runCmd(g), createCmd(g), startCmd(g), stopCmd(g), restartCmd(g), killCmd(g), rmCmd(g), ls,
		logsCmd(g), attachCmd(g), execCmd(g), inspectContainerCmd(g), waitCmd(g), topCmd(g), statsCmd(g), portCmd(g),
		renameCmd(g), pauseCmd(g), unpauseCmd(g), updateCmd(g), cpCmd(g), diffCmd(g), commitCmd(g), exportCmd(g), containerPruneCmd(g))
	return c
}

// eachArg calls do on each argument in turn; do prints what it did, and
// what it returns is printed as Docker prints a daemon's error. The exit
// code is 1 if any failed.
func eachArg(args []string, do func(i int, ref string) error) error {
	failed := false
	for i, ref := range args {
		if err := do(i, ref); err != nil {
			fmt.Fprintln(os.Stderr, "Error response from daemon:", err)
			failed = true
		}
	}
	if failed {
		return exitCode(1, nil)
	}
	return nil
}

// forEach runs fn on each named object in turn, printing each name as
// Docker does, and fails if any failed.
func forEach(args []string, fn func(ref string) error) error {
	return eachArg(args, func(_ int, ref string) error { return printRef(ref, fn(ref)) })
}

// parallelEach is forEach with the objects handled at once (stop, rm -f:
// each waits on its own container), output in argument order.
func parallelEach(args []string, fn func(ref string) error) error {
	errs := make([]error, len(args))
	var wg sync.WaitGroup
	for i, ref := range args {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(ref)
		}()
	}
	wg.Wait()
	return eachArg(args, func(i int, ref string) error { return printRef(ref, errs[i]) })
}

// printRef prints ref if its work succeeded (err is nil) and returns err.
func printRef(ref string, err error) error {
	if err == nil {
		fmt.Println(ref)
	}
	return err
}

// eachCmd is a command that does do to each of its arguments (containers,
// volumes), in turn or (parallel) all at once, printing each name or its
// error as Docker does.
func eachCmd(g *globals, use, short string, parallel bool, do func(cmd *cobra.Command, e *engine.Engine, ref string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			each := forEach
			if parallel {
				each = parallelEach
			}
			return each(args, func(ref string) error { return do(cmd, e, ref) })
		},
	}
}

func startCmd(g *globals) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			if attach || interactive {
				if len(args) > 1 {
					return exitCode(125, errors.New("you cannot start and attach multiple containers at once"))
				}
				return runAttached(cmd.Context(), g, e, args[0], attachOptions{stdin: interactive, stdout: true, stderr: true, start: true})
			}
			return forEach(args, func(ref string) error {
				_, err := e.Start(cmd.Context(), ref, engine.StartOptions{})
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	cmd.Flags().String("detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

func stopCmd(g *globals) *cobra.Command {
	var timeout int
	var signal string
	cmd := eachCmd(g, "stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", true,
		func(cmd *cobra.Command, e *engine.Engine, ref string) error {
			_, err := e.Stop(cmd.Context(), ref, timeoutSet(cmd, &timeout), signal)
			return err
		})
	stopFlags(cmd, &timeout, &signal)
	cmd.Flags().IntVar(&timeout, "timeout", 10, "Seconds to wait before killing the container")
	cmd.Flags().MarkHidden("timeout")
	return cmd
}

func restartCmd(g *globals) *cobra.Command {
	var timeout int
	var signal string
	cmd := eachCmd(g, "restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", true,
		func(cmd *cobra.Command, e *engine.Engine, ref string) error {
			_, err := e.Restart(cmd.Context(), ref, timeoutSet(cmd, &timeout), signal)
			return err
		})
	stopFlags(cmd, &timeout, &signal)
	return cmd
}

// stopFlags are stop's and restart's -t/--time and -s/--signal.
func stopFlags(cmd *cobra.Command, timeout *int, signal *string) {
	cmd.Flags().IntVarP(timeout, "time", "t", 10, "Seconds to wait before killing the container")
	cmd.Flags().StringVarP(signal, "signal", "s", "", "Signal to send to the container")
}

// timeoutSet is the timeout if one was given (-t, or stop's --timeout).
func timeoutSet(cmd *cobra.Command, timeout *int) *int {
	if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
		return timeout
	}
	return nil
}

func killCmd(g *globals) *cobra.Command {
	var signal string
	var sig unix.Signal
	cmd := eachCmd(g, "kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", false,
		func(cmd *cobra.Command, e *engine.Engine, ref string) error {
			_, err := e.Kill(cmd.Context(), ref, sig)
			return err
		})
	// The signal is checked before the engine opens (a usage error: 125).
	cmd.PreRunE = func(*cobra.Command, []string) error {
		var err error
		if sig, err = engine.ParseSignal(signal); err != nil {
			return exitCode(125, err)
		}
		return nil
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "Signal to send to the container")
	return cmd
}

func rmCmd(g *globals) *cobra.Command {
	var force, volumes bool
	cmd := eachCmd(g, "rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", true,
		func(cmd *cobra.Command, e *engine.Engine, ref string) error {
			return e.Remove(cmd.Context(), ref, force, volumes)
		})
	cmd.Aliases = []string{"remove"}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return cmd
}

func pauseCmd(g *globals) *cobra.Command {
	return eachCmd(g, "pause CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", false,
		func(_ *cobra.Command, e *engine.Engine, ref string) error { _, err := e.Pause(ref); return err })
}

func unpauseCmd(g *globals) *cobra.Command {
	return eachCmd(g, "unpause CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", false,
		func(_ *cobra.Command, e *engine.Engine, ref string) error { _, err := e.Unpause(ref); return err })
}

func renameCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			return e.Rename(args[0], args[1])
		},
	}
}

func waitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			return eachArg(args, func(_ int, ref string) error {
				code, err := e.Wait(cmd.Context(), ref, "not-running")
				if err != nil {
					return err
				}
				fmt.Println(code)
				return nil
			})
		},
	}
}

func updateCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("restart") {
				f.restart = ""
			}
			_, hc, err := f.toConfig("x", nil, cmd.Flags())
			if err != nil {
				return exitCode(125, err)
			}
			u := &container.UpdateConfig{Resources: hc.Resources, RestartPolicy: hc.RestartPolicy}
			if cmd.Flags().NFlag() == 0 {
				return exitCode(125, errors.New("you must provide one or more flags when using this command"))
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			return forEach(args, func(ref string) error { _, err := e.Update(cmd.Context(), ref, u); return err })
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.memory, "memory", "m", "", "Memory limit")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	fl.StringVar(&f.memoryReservation, "memory-reservation", "", "Memory soft limit")
	fl.Float64Var(&f.cpus, "cpus", 0, "Number of CPUs")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&f.cpuQuota, "cpu-quota", 0, "Limit CPU CFS quota")
	fl.Int64Var(&f.cpuPeriod, "cpu-period", 0, "Limit CPU CFS period")
	fl.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution")
	fl.StringVar(&f.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fl.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "Block IO (relative weight)")
	fl.StringVar(&f.restart, "restart", "", "Restart policy to apply when a container exits")
	return cmd
}

// psRow is one container as `ps` templates see it (Docker's field names).
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Size, Names, Labels, Mounts, Networks string
	c                                                                                                      *engine.Container
}

func (r psRow) Label(k string) string { return r.c.Config.Labels[k] }

func psCmd(g *globals) *cobra.Command {
	var all, quiet, size, noTrunc, latest bool
	var last int
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			cs, err := e.List()
			if err != nil {
				return err
			}
			f, err := parseFilters(filters)
			if err != nil {
				return err
			}
			var rows []any
			for _, c := range cs {
				if !all && !f.has("status") && !c.State.Running() && len(filters) == 0 && last == 0 && !latest {
					continue
				}
				if !all && len(filters) > 0 && !f.has("status") && !c.State.Running() {
					continue
				}
				if ok, err := f.matchContainer(e, c); err != nil {
					return exitCode(125, err)
				} else if !ok {
					continue
				}
				rows = append(rows, makePsRow(e, c, noTrunc, size))
			}
			if latest {
				last = 1
			}
			if last > 0 && len(rows) > last {
				rows = rows[:last]
			}
			if quiet {
				for _, r := range rows {
					fmt.Println(r.(psRow).ID)
				}
				return nil
			}
			def := "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			if size {
				def += "\t{{.Size}}"
			}
			return render(os.Stdout, format, rows, map[string]string{"ID": "CONTAINER ID", "RunningFor": "CREATED", "CreatedAt": "CREATED AT"}, def)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	fl.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	fl.IntVarP(&last, "last", "n", 0, "Show n last created containers (includes all states)")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	fl.StringVar(&format, "format", "", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
	return cmd
}

func makePsRow(e *engine.Engine, c *engine.Container, noTrunc, size bool) psRow {
	id := c.ID
	cmdline := strings.Join(append(append([]string{}, c.Config.Entrypoint...), c.Config.Cmd...), " ")
	if !noTrunc {
		id = engine.ShortID(id)
		if len(cmdline) > 20 {
			cmdline = cmdline[:19] + "…"
		}
	}
	cmdline = strconv.Quote(cmdline)
	var labels []string
	for k, v := range c.Config.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	var mounts []string
	for _, m := range c.Mounts {
		n := m.Name
		if n == "" {
			n = m.Source
		}
		if !noTrunc && len(n) > 15 {
			n = n[:15] + "…"
		}
		mounts = append(mounts, n)
	}
	r := psRow{
		ID: id, Image: c.ImageRef, Command: cmdline, CreatedAt: c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: ago(c.Created), State: publicState(c), Status: statusText(c), Names: c.Name,
		Labels: strings.Join(labels, ","), Mounts: strings.Join(mounts, ","), Networks: networkName(c), c: c,
		Ports: portsText(e, c),
	}
	if size {
		if u, err := e.Usage(c); err == nil {
			r.Size = humanSize(u) + " (virtual " + humanSize(u) + ")"
		}
	}
	return r
}

func publicState(c *engine.Container) string {
	if c.State.Status == "starting" {
		return "created"
	}
	return c.State.Status
}

func networkName(c *engine.Container) string {
	if c.Network != nil && len(c.Network.Networks) > 0 {
		var names []string
		for n := range c.Network.Networks {
			names = append(names, n)
		}
		sort.Strings(names)
		return strings.Join(names, ",")
	}
	nm := string(c.HostConfig.NetworkMode)
	if nm == "" || nm == "default" {
		return "bridge"
	}
	return nm
}

// portsText is ps's PORTS column: "0.0.0.0:8080->80/tcp".
func portsText(e *engine.Engine, c *engine.Container) string {
	var out []string
	for p, binds := range e.Ports(c) {
		for _, b := range binds {
			out = append(out, b+"->"+p)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// statusText is Docker's STATUS column.
func statusText(c *engine.Container) string {
	s := c.State
	switch s.Status {
	case "running":
		t := "Up " + durationText(time.Since(s.StartedAt))
		if s.Health != nil {
			t += " (" + string(s.Health.Status) + ")"
		}
		return t
	case "paused":
		return "Up " + durationText(time.Since(s.StartedAt)) + " (Paused)"
	case "restarting":
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, durationText(time.Since(s.FinishedAt)))
	case "exited":
		if s.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", s.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, durationText(time.Since(s.FinishedAt)))
	case "created", "starting":
		return "Created"
	case "removing":
		return "Removal In Progress"
	case "dead":
		return "Dead"
	}
	return s.Status
}

func durationText(d time.Duration) string {
	switch {
	case d < time.Second:
		return "Less than a second"
	}
	return unitsHuman(d)
}
