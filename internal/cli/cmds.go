package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/progress"
	"github.com/berth-project/berth/storage/archive"
)

// parseTime parses --since/--until: RFC 3339 (or a date), Unix seconds,
// or a duration before now ("10m").
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339, a Unix timestamp or a duration such as 10m", s)
}

// parseSinceUntil parses --since and --until (parseTime); a bad one is a
// usage error (125).
func parseSinceUntil(since, until string) (s, u time.Time, err error) {
	if s, err = parseTime(since); err != nil {
		return s, u, exitCode(125, err)
	}
	if u, err = parseTime(until); err != nil {
		return s, u, exitCode(125, err)
	}
	return s, u, nil
}

func logsCmd(g *globals) *cobra.Command {
	var follow, timestamps bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := -1
			if tail != "all" && tail != "" {
				v, err := strconv.Atoi(tail)
				if err != nil {
					return exitCode(125, fmt.Errorf("invalid --tail %q: want a number or all", tail))
				}
				n = v
			}
			s, u, err := parseSinceUntil(since, until)
			if err != nil {
				return err
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			out := bufio.NewWriter(os.Stdout)
			defer out.Flush()
			o := engine.LogsOptions{Follow: follow, Tail: n, Since: s, Until: u, Timestamps: timestamps, Stdout: out, Stderr: os.Stderr}
			if follow {
				o.Stdout = flushWriter{out}
			}
			return e.Logs(cmd.Context(), args[0], o)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "Follow log output")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	cmd.Flags().StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	cmd.Flags().StringVar(&since, "since", "", "Show logs since timestamp or relative (e.g. 42m)")
	cmd.Flags().StringVar(&until, "until", "", "Show logs before a timestamp or relative (e.g. 42m)")
	cmd.Flags().Bool("details", false, "Show extra details provided to logs")
	return cmd
}

type flushWriter struct{ w *bufio.Writer }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

func execCmd(g *globals) *cobra.Command {
	var interactive, tty, detach, privileged bool
	var env, envFile []string
	var workdir, user, detachKeys string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return exitCode(125, err)
			}
			for _, f := range envFile {
				vars, err := readKVFile(f, true)
				if err != nil {
					return exitCode(125, err)
				}
				env = append(vars, env...)
			}
			o := &engine.ExecOptions{Cmd: args[1:], Env: env, WorkingDir: workdir, User: user, Tty: tty, Privileged: privileged}
			devnull, _ := os.Open(os.DevNull)
			defer devnull.Close()
			if !interactive {
				o.Stdio[0] = devnull
			}
			if detach {
				o.Stdio = [3]*os.File{devnull, devnull, devnull}
				o.Tty = false
			}
			if tty && interactive && !term.IsTerminal(int(os.Stdin.Fd())) {
				return exitCode(1, errors.New("the input device is not a TTY"))
			}
			p, err := e.Exec(cmd.Context(), args[0], o)
			if err != nil {
				code := 126
				if strings.Contains(err.Error(), "not found") || strings.Contains(err.Error(), "no such file") {
					code = 127
				}
				if errors.Is(err, engine.ErrNotFound) || errors.Is(err, engine.ErrConflict) {
					code = 1
				}
				return exitCode(code, err)
			}
			if detach {
				return nil
			}
			if p.Console != nil {
				code, err := relayConsole(p, interactive, detachKeys)
				if err != nil {
					return exitCode(126, err)
				}
				if code != 0 {
					return exitCode(code, nil)
				}
				return nil
			}
			code, err := p.Wait()
			if err != nil {
				return exitCode(126, err)
			}
			if code != 0 {
				return exitCode(code, nil)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	fl.BoolVar(&privileged, "privileged", false, "Give extended privileges to the command")
	fl.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&envFile, "env-file", nil, "Read in a file of environment variables")
	fl.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVarP(&user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fl.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}

// relayConsole connects our terminal to an exec's pty until it exits.
func relayConsole(p *engine.ExecProcess, interactive bool, detachKeys string) (int, error) {
	m := p.Console
	defer m.Close()
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		if st, err := term.MakeRaw(fd); err == nil {
			defer term.Restore(fd, st)
		}
		if w, h, err := term.GetSize(fd); err == nil {
			unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(h), Col: uint16(w)})
		}
	}
	if interactive {
		keys, _ := parseDetachKeys(detachKeys)
		go copyDetach(m, os.Stdin, keys)
	}
	done := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, m)
		close(done)
	}()
	code, err := p.Wait()
	select {
	case <-done:
	case <-time.After(200 * time.Millisecond):
	}
	return code, err
}

func inspectCmd(g *globals) *cobra.Command {
	var format, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on berth objects",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return inspectObjects(cmd.Context(), g, args, typ, format)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().StringVar(&typ, "type", "", "Only inspect objects of the given type (container, image, volume)")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	return cmd
}

func inspectContainerCmd(g *globals) *cobra.Command {
	c := inspectCmd(g)
	c.Short = "Display detailed information on one or more containers"
	c.Flags().Set("type", "container")
	return c
}

func inspectImageCmd(g *globals) *cobra.Command {
	c := inspectCmd(g)
	c.Short = "Display detailed information on one or more images"
	c.Flags().Set("type", "image")
	return c
}

func inspectObjects(ctx context.Context, g *globals, refs []string, typ, format string) error {
	be, err := g.backend()
	if err != nil {
		return err
	}
	var out []any
	failed := false
	for _, ref := range refs {
		var obj any
		var err error
		if typ == "" || typ == "container" {
			var c *engine.Container
			if c, err = be.eng.Get(ref); err == nil {
				obj = be.eng.Inspect(c)
			}
		}
		if obj == nil && (typ == "" || typ == "image") {
			var img *image.Image
			if img, err = be.images.Get(ctx, ref); err == nil {
				obj = imageInspect(img)
			}
		}
		if obj == nil && (typ == "" || typ == "volume") {
			var v *engine.Volume
			if v, err = be.eng.VolumeGet(ref); err == nil {
				obj = v
			}
		}
		if obj == nil {
			what := "object"
			if typ != "" {
				what = typ
			}
			fmt.Fprintf(os.Stderr, "Error: No such %s: %s\n", what, ref)
			failed = true
			continue
		}
		out = append(out, obj)
	}
	if format != "" {
		// Templates see the JSON shape (Docker's field names: .Id), as
		// docker inspect's do.
		rows := make([]any, len(out))
		for i, o := range out {
			b, err := json.Marshal(o)
			if err != nil {
				return err
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				return err
			}
			rows[i] = m
		}
		if err := render(os.Stdout, format, rows, nil, ""); err != nil {
			return err
		}
	} else {
		if out == nil {
			out = []any{}
		}
		writeJSON(os.Stdout, out)
	}
	if failed {
		return exitCode(1, nil)
	}
	return nil
}

// imageInspect is an image in the shape of `docker image inspect`.
func imageInspect(img *image.Image) map[string]any {
	m := map[string]any{
		"Id": img.ID, "RepoTags": nonNil(img.RepoTags), "RepoDigests": nonNil(img.RepoDigests),
		"Parent": img.Parent, "Created": img.Created.UTC().Format(time.RFC3339Nano),
		"Size": img.Size, "Os": img.Platform.OS, "Architecture": img.Platform.Architecture,
		"Variant":    img.Platform.Variant,
		"RootFS":     map[string]any{"Type": "layers", "Layers": img.DiffIDs},
		"Metadata":   map[string]any{"LastTagTime": img.LastTagTime.UTC().Format(time.RFC3339Nano)},
		"Descriptor": img.Manifest,
	}
	if c := img.Config; c != nil {
		m["Config"] = c.Config
		m["Author"] = c.Author
		m["DockerVersion"] = c.DockerVersion
		m["Comment"] = ""
		if len(c.History) > 0 {
			m["Comment"] = c.History[len(c.History)-1].Comment
		}
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func topCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			_, pids, err := e.Processes(args[0])
			if err != nil {
				return err
			}
			sort.Ints(pids)
			fmt.Printf("%-10s%-10s%-10s%-6s%-8s%-6s%-10s%s\n", "UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")
			for _, pid := range pids {
				st, err := procStat(pid)
				if err != nil {
					continue
				}
				fmt.Printf("%-10s%-10d%-10d%-6d%-8s%-6s%-10s%s\n", st.user, pid, st.ppid, 0, st.stime, st.tty, st.time, st.cmd)
			}
			return nil
		},
	}
}

type procInfo struct {
	user, stime, tty, time, cmd string
	ppid                        int
}

func procStat(pid int) (*procInfo, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("bad stat")
	}
	f := strings.Fields(s[i+2:])
	p := &procInfo{tty: "?"}
	p.ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	secs := (utime + stime) / 100
	p.time = fmt.Sprintf("%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d", pid), &st) == nil {
		p.user = strconv.Itoa(int(st.Uid))
		if st.Uid == 0 {
			p.user = "root"
		}
		p.stime = time.Unix(st.Ctim.Sec, 0).Format("15:04")
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		p.cmd = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	if p.cmd == "" {
		p.cmd = "[" + strings.Trim(s[strings.IndexByte(s, '(')+1:i], " ") + "]"
	}
	return p, nil
}

func statsCmd(g *globals) *cobra.Command {
	var noStream, all, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			prev := map[string]cpuSample{}
			for first := true; ; first = false {
				refs := args
				if len(refs) == 0 {
					cs, err := e.List()
					if err != nil {
						return err
					}
					for _, c := range cs {
						if all || c.State.Running() {
							refs = append(refs, c.ID)
						}
					}
				}
				rows, err := statRows(e, refs, prev, noTrunc)
				if err != nil {
					return err
				}
				if !first && !noStream {
					fmt.Print("\033[2J\033[H")
				}
				if err := render(os.Stdout, format, rows, map[string]string{"ID": "CONTAINER ID", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"},
					"table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"); err != nil {
					return err
				}
				if noStream && !first {
					return nil
				}
				if noStream {
					// One more sample for the CPU percentage, as docker does.
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
				if noStream {
					rows, err = statRows(e, refs, prev, noTrunc)
					if err != nil {
						return err
					}
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

type cpuSample struct {
	usage uint64
	at    time.Time
}

type statRow struct{ ID, Name, CPUPerc, MemUsage, MemPerc, NetIO, BlockIO, PIDs string }

func statRows(e *engine.Engine, refs []string, prev map[string]cpuSample, noTrunc bool) ([]any, error) {
	var rows []any
	for _, ref := range refs {
		c, st, err := e.Stats(ref)
		if err != nil {
			return nil, err
		}
		id := c.ID
		if !noTrunc {
			id = engine.ShortID(id)
		}
		r := statRow{ID: id, Name: c.Name, CPUPerc: "0.00%", MemUsage: "0B / 0B", MemPerc: "0.00%", NetIO: "0B / 0B", BlockIO: "0B / 0B", PIDs: "0"}
		if st != nil {
			now := time.Now()
			if p, ok := prev[c.ID]; ok && now.After(p.at) && st.CPU.Usage.Total >= p.usage {
				pct := float64(st.CPU.Usage.Total-p.usage) / float64(now.Sub(p.at).Nanoseconds()) * 100
				r.CPUPerc = fmt.Sprintf("%.2f%%", pct)
			}
			prev[c.ID] = cpuSample{st.CPU.Usage.Total, now}
			limit := st.Memory.Usage.Limit
			if limit == 0 || limit > 1<<60 {
				var si unix.Sysinfo_t
				if unix.Sysinfo(&si) == nil {
					limit = si.Totalram * uint64(si.Unit)
				}
			}
			usage := st.Memory.Usage.Usage
			r.MemUsage = progress.BinarySize(usage) + " / " + progress.BinarySize(limit)
			if limit > 0 {
				r.MemPerc = fmt.Sprintf("%.2f%%", float64(usage)/float64(limit)*100)
			}
			r.PIDs = strconv.FormatUint(st.Pids.Current, 10)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func portCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			c, err := e.Get(args[0])
			if err != nil {
				return err
			}
			ports := e.Ports(c)
			var keys []string
			for k := range ports {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			want := ""
			if len(args) == 2 {
				want = withProto(args[1])
			}
			found := false
			for _, k := range keys {
				if want != "" && k != want {
					continue
				}
				for _, b := range ports[k] {
					found = true
					if want != "" {
						fmt.Println(b)
					} else {
						fmt.Printf("%s -> %s\n", k, b)
					}
				}
			}
			if want != "" && !found {
				return exitCode(1, fmt.Errorf("no public port '%s' published for %s", want, c.Name))
			}
			return nil
		},
	}
}

func cpCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			return doCopy(cmd.Context(), e, args[0], args[1])
		},
	}
	cmd.Flags().BoolP("archive", "a", false, "Archive mode (copy all uid/gid information)")
	cmd.Flags().BoolP("follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	return cmd
}

// splitCp splits "CONTAINER:PATH"; a local path has no container part
// (a path starting with / or . is always local).
func splitCp(s string) (ctr, p string) {
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
		return "", s
	}
	if i := strings.IndexByte(s, ':'); i > 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

func doCopy(ctx context.Context, e *engine.Engine, src, dst string) error {
	sc, sp := splitCp(src)
	dc, dp := splitCp(dst)
	switch {
	case sc != "" && dc != "":
		return exitCode(1, errors.New("copying between containers is not supported"))
	case sc == "" && dc == "":
		return exitCode(1, errors.New("must specify at least one container source"))
	case sc != "":
		if dp == "-" {
			return e.CopyFrom(ctx, sc, sp, "", os.Stdout)
		}
		// Into an existing directory under the source's name, else as
		// the destination's name in its parent.
		as := ""
		target := dp
		if fi, err := os.Stat(dp); err == nil && fi.IsDir() {
			if strings.HasSuffix(sp, "/.") {
				return copyToHostDir(ctx, e, sc, sp, "", dp)
			}
		} else {
			if strings.HasSuffix(dp, "/") {
				return fmt.Errorf("destination directory %s does not exist", dp)
			}
			as = filepath.Base(dp)
			target = filepath.Dir(dp)
		}
		return copyToHostDir(ctx, e, sc, sp, as, target)
	default:
		var r io.Reader
		if sp == "-" {
			r = os.Stdin
		} else {
			exists, isDir, err := e.StatIn(ctx, dc, dp)
			if err != nil {
				return err
			}
			dir, as := dp, ""
			if !exists || !isDir {
				dir, as = path.Dir(dp), path.Base(dp)
			}
			pr, pw := io.Pipe()
			done := make(chan struct{})
			go func() { defer close(done); pw.CloseWithError(hostTar(sp, as, pw)) }()
			err = e.CopyTo(ctx, dc, dir, pr)
			pr.Close()
			<-done
			return err
		}
		return e.CopyTo(ctx, dc, dp, r)
	}
}

func copyToHostDir(ctx context.Context, e *engine.Engine, ctr, p, as, dir string) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := e.CopyFrom(ctx, ctr, p, as, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	_, err := archive.Apply(dir, pr, archive.ApplyOptions{})
	pr.Close()
	// The reader's end is closed: wait until the copy gave back its mount
	// of a stopped container before the command exits.
	if cerr := <-done; cerr != nil && !errors.Is(cerr, io.ErrClosedPipe) {
		return cerr
	}
	return err
}

// hostTar writes the host path p as a tar entry named as (default its
// base name), without following symlinks below it.
func hostTar(p, as string, w io.Writer) error {
	p = filepath.Clean(p)
	dir, base := filepath.Split(p)
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if as == "" {
		as = base
	}
	return archive.WriteEntry(w, d, base, as, archive.DiffOptions{})
}

func diffCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			changes, err := e.Changes(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, c := range changes {
				fmt.Println(c.Kind, c.Path)
			}
			return nil
		},
	}
}

func commitCmd(g *globals) *cobra.Command {
	var author, message string
	var changes []string
	var pause bool
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := g.backend()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			ch, err := image.ParseChanges(changes)
			if err != nil {
				return exitCode(125, err)
			}
			c, err := be.eng.Get(args[0])
			if err != nil {
				return err
			}
			parent, err := be.images.Get(ctx, c.Image)
			if err != nil && !errors.Is(err, image.ErrNotFound) {
				return err
			}
			ch.Author, ch.Comment = author, message
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			// The new image's config is the container's.
			if ch.Cmd == nil {
				ch.Cmd = c.Config.Cmd
			}
			if ch.Entrypoint == nil {
				ch.Entrypoint = c.Config.Entrypoint
			}
			if ch.Env == nil {
				ch.Env = c.Config.Env
			}
			pr, pw := io.Pipe()
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, err := be.eng.DiffLayer(ctx, c.ID, pause, pw)
				pw.CloseWithError(err)
			}()
			img, err := be.images.Commit(ctx, pr, parent, ch, ref)
			pr.Close()
			<-done // the container is unpaused again
			if err != nil {
				return err
			}
			fmt.Println(img.ID)
			return nil
		},
	}
	cmd.Flags().StringVarP(&author, "author", "a", "", "Author")
	cmd.Flags().StringVarP(&message, "message", "m", "", "Commit message")
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	cmd.Flags().BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

func exportCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			return writeArchive(output, func(w io.Writer) error {
				return e.Export(cmd.Context(), args[0], w)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func containerPruneCmd(g *globals) *cobra.Command {
	var filterList []string
	cmd := pruneCmd("Remove all stopped containers", func(cmd *cobra.Command) error {
		e, err := g.engine()
		if err != nil {
			return err
		}
		f, err := parseFilters(filterList)
		if err != nil {
			return err
		}
		cs, err := e.List()
		if err != nil {
			return err
		}
		var space int64
		fmt.Println("Deleted Containers:")
		for _, c := range cs {
			if c.State.Running() || c.State.Status == "starting" || !labelMatch(f, c.Config.Labels) {
				continue
			}
			u, _ := e.Usage(c)
			if err := e.Remove(cmd.Context(), c.ID, false, false); err == nil {
				fmt.Println(c.ID)
				space += u
			}
		}
		fmt.Println("\nTotal reclaimed space:", humanSize(space))
		return nil
	})
	cmd.Flags().StringArrayVar(&filterList, "filter", nil, "Provide filter values (e.g. 'label=<key>=<value>')")
	return cmd
}

func eventsCmd(g *globals) *cobra.Command {
	var since, until, format string
	var filterList []string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from berth",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, u, err := parseSinceUntil(since, until)
			if err != nil {
				return err
			}
			f, err := parseFilters(filterList)
			if err != nil {
				return err
			}
			for k := range f {
				switch k {
				case "container", "event", "image", "label", "type", "volume":
				default:
					return exitCode(125, fmt.Errorf("invalid filter %q", k))
				}
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			var tmpl = format
			out := bufio.NewWriter(os.Stdout)
			defer out.Flush()
			return e.Events(cmd.Context(), s, u, func(m events.Message) error {
				if !matchEvent(f, m) {
					return nil
				}
				if tmpl != "" {
					if err := render(out, tmpl, []any{m}, nil, ""); err != nil {
						return err
					}
				} else {
					var attrs []string
					for k, v := range m.Actor.Attributes {
						attrs = append(attrs, k+"="+v)
					}
					sort.Strings(attrs)
					fmt.Fprintf(out, "%s %s %s %s (%s)\n", time.Unix(0, m.TimeNano).Format("2006-01-02T15:04:05.000000000-07:00"), m.Type, m.Action, m.Actor.ID, strings.Join(attrs, ", "))
				}
				return out.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "Show all events created since timestamp")
	cmd.Flags().StringVar(&until, "until", "", "Stream events until this timestamp")
	cmd.Flags().StringArrayVarP(&filterList, "filter", "f", nil, "Filter output based on conditions provided")
	cmd.Flags().StringVar(&format, "format", "", "Format the output using the given Go template")
	return cmd
}

func matchEvent(f filters, m events.Message) bool {
	name := m.Actor.Attributes["name"]
	return f.any("container", func(v string) bool {
		return m.Type == "container" && (strings.HasPrefix(m.Actor.ID, v) || name == v)
	}) && f.any("event", func(v string) bool {
		a := string(m.Action)
		return a == v || strings.HasPrefix(a, v+":")
	}) && f.any("type", func(v string) bool { return string(m.Type) == v }) &&
		f.any("image", func(v string) bool { return m.Actor.Attributes["image"] == v }) &&
		f.any("volume", func(v string) bool { return m.Type == "volume" && m.Actor.ID == v }) &&
		labelMatch(f, m.Actor.Attributes)
}
