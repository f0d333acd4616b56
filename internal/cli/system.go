package cli

import (
	"fmt"
	"os"
	goruntime "runtime"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/progress"
)

func volumeCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "volume", Short: "Manage volumes"}
	var labels, opts []string
	var driver string
	create := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if driver != "" && driver != "local" {
				return exitCode(125, fmt.Errorf("volume driver %q is not supported: berth has the local driver", driver))
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			v, err := e.VolumeCreate(cmd.Context(), name, kvMap(labels), optMap(opts))
			if err != nil {
				return err
			}
			fmt.Println(v.Name)
			return nil
		},
	}
	create.Flags().StringArrayVarP(&labels, "label", "l", nil, "Set metadata for a volume")
	create.Flags().StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	create.Flags().StringVarP(&driver, "driver", "d", "local", "Specify volume driver name")
	var quiet bool
	var format string
	var filterList []string
	ls := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			f, err := parseFilters(filterList)
			if err != nil {
				return err
			}
			vols, err := e.VolumeList()
			if err != nil {
				return err
			}
			var rows []any
			for _, v := range vols {
				if !labelMatch(f, v.Labels) || !f.any("name", func(s string) bool { return strings.Contains(v.Name, s) }) {
					continue
				}
				if f.has("dangling") {
					users, _ := e.VolumeUsers(v.Name)
					if (len(users) == 0) != (f["dangling"][0] == "true") {
						continue
					}
				}
				if quiet {
					fmt.Println(v.Name)
					continue
				}
				rows = append(rows, v)
			}
			if quiet {
				return nil
			}
			return render(os.Stdout, format, rows, map[string]string{"Name": "VOLUME NAME"}, "table {{.Driver}}\t{{.Name}}")
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	ls.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	ls.Flags().StringArrayVarP(&filterList, "filter", "f", nil, "Provide filter values (e.g. 'dangling=true')")
	var iformat string
	inspect := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspectObjects(cmd.Context(), g, args, "volume", iformat)
		},
	}
	inspect.Flags().StringVarP(&iformat, "format", "f", "", "Format output using a custom template")
	var force bool
	rm := eachCmd(g, "rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", false,
		func(_ *cobra.Command, e *engine.Engine, n string) error { return e.VolumeRemove(n, force) })
	rm.Aliases = []string{"remove"}
	rm.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	var all bool
	prune := pruneCmd("Remove unused local volumes", func(cmd *cobra.Command) error {
		e, err := g.engine()
		if err != nil {
			return err
		}
		removed, space, err := e.VolumePrune(all)
		if err != nil {
			return err
		}
		if len(removed) > 0 {
			fmt.Println("Deleted Volumes:")
			for _, n := range removed {
				fmt.Println(n)
			}
			fmt.Println()
		}
		fmt.Println("Total reclaimed space:", humanSize(space))
		return nil
	})
	prune.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	c.AddCommand(create, ls, inspect, rm, prune)
	return c
}

// pruneCmd is a `prune` command: no arguments, and -f/--force, taken as
// Docker's (berth never prompts).
func pruneCmd(short string, run func(cmd *cobra.Command) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return run(cmd) },
	}
	cmd.Flags().BoolP("force", "f", false, "Do not prompt for confirmation")
	return cmd
}

func optMap(list []string) map[string]string {
	if len(list) == 0 {
		return nil
	}
	return kvMap(list)
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the berth version information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var u unix.Utsname
			unix.Uname(&u)
			fmt.Printf("berth version %s\n Go version:  %s\n OS/Arch:     %s/%s\n Kernel:      %s\n Daemon:      none (every command works on the state directly)\n",
				Version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH, unix.ByteSliceToString(u.Release[:]))
			return nil
		},
	}
}

func infoCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Display system-wide information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			cs, err := be.eng.List()
			if err != nil {
				return err
			}
			info := map[string]any{}
			running, paused, stopped := 0, 0, 0
			for _, c := range cs {
				switch c.State.Status {
				case "running", "restarting":
					running++
				case "paused":
					paused++
				default:
					stopped++
				}
			}
			imgs, _ := be.images.List(cmd.Context(), image.ListOptions{})
			var u unix.Utsname
			unix.Uname(&u)
			var si unix.Sysinfo_t
			unix.Sysinfo(&si)
			cgv := "1"
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				cgv = "2"
			}
			host, _ := os.Hostname()
			info["Containers"], info["ContainersRunning"], info["ContainersPaused"], info["ContainersStopped"] = len(cs), running, paused, stopped
			info["Images"] = len(imgs)
			info["Driver"] = be.driver
			info["CgroupVersion"] = cgv
			info["CgroupDriver"] = "cgroupfs"
			info["KernelVersion"] = unix.ByteSliceToString(u.Release[:])
			info["OperatingSystem"] = osName()
			info["OSType"] = "linux"
			info["Architecture"] = goruntime.GOARCH
			info["NCPU"] = goruntime.NumCPU()
			info["MemTotal"] = si.Totalram * uint64(si.Unit)
			info["Name"] = host
			info["ServerVersion"] = Version
			info["DockerRootDir"] = be.eng.Root()
			info["RunDir"] = be.eng.RunDir()
			info["LoggingDriver"] = "json-file"
			info["SecurityOptions"] = []string{"name=seccomp,profile=builtin"}
			if m, err := be.eng.Network(); err == nil {
				if tag, err := m.Tag(); err == nil {
					info["NetworkLinkPrefix"] = "berth" + tag // host ends of veths, user bridges
				}
			}
			if format != "" {
				return render(os.Stdout, format, []any{info}, nil, "")
			}
			fmt.Printf("Containers: %d\n Running: %d\n Paused: %d\n Stopped: %d\nImages: %d\nServer Version: %s\nStorage Driver: %s\nLogging Driver: json-file\nCgroup Driver: cgroupfs\nCgroup Version: %s\nSecurity Options:\n seccomp\n  Profile: builtin\nKernel Version: %s\nOperating System: %s\nOSType: linux\nArchitecture: %s\nCPUs: %d\nTotal Memory: %s\nName: %s\nBerth Root Dir: %s\nRun Dir: %s\n",
				len(cs), running, paused, stopped, len(imgs), Version, be.driver, cgv, info["KernelVersion"], info["OperatingSystem"], goruntime.GOARCH,
				goruntime.NumCPU(), progress.BinarySize(si.Totalram*uint64(si.Unit)), host, be.eng.Root(), be.eng.RunDir())
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

func osName() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func systemCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "system", Short: "Manage berth"}
	df := &cobra.Command{
		Use:   "df",
		Short: "Show berth disk usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			du, err := be.images.DiskUsage(cmd.Context())
			if err != nil {
				return err
			}
			cs, err := be.eng.List()
			if err != nil {
				return err
			}
			inUse := map[string]bool{}
			var csize, cactive, creclaim int64
			for _, c := range cs {
				inUse[c.Image] = true
				u, _ := be.eng.Usage(c)
				csize += u
				if c.State.Running() {
					cactive++
				} else {
					creclaim += u
				}
			}
			var iactive, ireclaim int64
			for _, im := range du.Images {
				if inUse[im.ID] {
					iactive++
				} else {
					ireclaim += im.UniqueSize
				}
			}
			vols, _ := be.eng.VolumeList()
			var vsize, vactive, vreclaim int64
			for _, v := range vols {
				s := dirSizeOf(v.Mountpoint)
				vsize += s
				if users, _ := be.eng.VolumeUsers(v.Name); len(users) > 0 {
					vactive++
				} else {
					vreclaim += s
				}
			}
			rows := []any{
				dfRow{"Images", fmt.Sprint(len(du.Images)), fmt.Sprint(iactive), humanSize(du.LayersSize), reclaim(ireclaim, du.LayersSize)},
				dfRow{"Containers", fmt.Sprint(len(cs)), fmt.Sprint(cactive), humanSize(csize), reclaim(creclaim, csize)},
				dfRow{"Local Volumes", fmt.Sprint(len(vols)), fmt.Sprint(vactive), humanSize(vsize), reclaim(vreclaim, vsize)},
			}
			return render(os.Stdout, "", rows, map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"},
				"table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}")
		},
	}
	prune := pruneCmd("Remove unused data", func(cmd *cobra.Command) error {
		if err := containerPruneCmd(g).RunE(cmd, nil); err != nil {
			return err
		}
		return imagePruneCmd(g).RunE(cmd, nil)
	})
	prune.Flags().BoolP("all", "a", false, "Remove all unused images not just dangling ones")
	var force bool
	reset := &cobra.Command{
		Use:   "reset [OPTIONS]",
		Short: "Remove all containers, images, volumes and networks, and berth's host objects (bridges, nftables table)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !force {
				return exitCode(1, fmt.Errorf("system reset removes everything under %s: confirm with --force", g.root))
			}
			be, err := g.backend()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			cs, err := be.eng.List()
			if err != nil {
				return err
			}
			for _, c := range cs {
				if err := be.eng.Remove(ctx, c.ID, true, true); err != nil {
					fmt.Fprintln(os.Stderr, "berth: remove container", c.Name+":", err)
				}
			}
			if m, err := be.eng.Network(); err == nil {
				if err := m.Destroy(ctx); err != nil {
					fmt.Fprintln(os.Stderr, "berth: remove networks:", err)
				}
				m.StopDNS()
			}
			if _, err := be.images.Prune(ctx, true); err != nil {
				fmt.Fprintln(os.Stderr, "berth: remove images:", err)
			}
			if vols, err := be.eng.VolumeList(); err == nil {
				for _, v := range vols {
					be.eng.VolumeRemove(v.Name, true)
				}
			}
			be.close()
			g.be = nil
			for _, d := range []string{g.runDir, g.root} {
				if err := os.RemoveAll(d); err != nil {
					return err
				}
			}
			return nil
		},
	}
	reset.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	restore := &cobra.Command{
		Use:   "restore",
		Short: "Start the containers whose restart policy says they run (always; unless-stopped unless stopped): run at boot",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			started, errs := e.Restore(cmd.Context())
			for _, c := range started {
				fmt.Println(c.Name)
			}
			for _, err := range errs {
				fmt.Fprintln(os.Stderr, "berth:", err)
			}
			if len(errs) > 0 {
				return exitCode(1, nil)
			}
			return nil
		},
	}
	c.AddCommand(df, prune, reset, restore, infoCmd(g), eventsCmd(g))
	return c
}

type dfRow struct{ Type, TotalCount, Active, Size, Reclaimable string }

func reclaim(n, total int64) string {
	if total == 0 {
		return humanSize(n)
	}
	return fmt.Sprintf("%s (%d%%)", humanSize(n), n*100/total)
}

func dirSizeOf(dir string) int64 {
	var st unix.Stat_t
	var n int64
	var walk func(string)
	walk = func(p string) {
		entries, err := os.ReadDir(p)
		if err != nil {
			return
		}
		for _, e := range entries {
			q := p + "/" + e.Name()
			if unix.Lstat(q, &st) == nil {
				n += st.Size
			}
			if e.IsDir() {
				walk(q)
			}
		}
	}
	walk(dir)
	return n
}
