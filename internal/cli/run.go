package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/engine/supervisor"
	"github.com/berth-project/berth/runtime"
)

func runCmd(g *globals) *cobra.Command {
	return runLikeCmd(g, "run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image", true)
}

func createCmd(g *globals) *cobra.Command {
	return runLikeCmd(g, "create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", false)
}

// runLikeCmd is run (start) or create, with their flags.
func runLikeCmd(g *globals, use, short string, start bool) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return doRun(cmd, g, &f, args, start)
		},
	}
	f.register(cmd.Flags(), start)
	return cmd
}

func doRun(cmd *cobra.Command, g *globals, f *runFlags, args []string, start bool) error {
	ctx := cmd.Context()
	if !start {
		f.detach = true
	}
	if f.detach && f.rm && !start {
		// create --rm is fine: removal happens after the first run.
	}
	cfg, hc, err := f.toConfig(args[0], args[1:], cmd.Flags())
	if err != nil {
		return exitCode(125, err)
	}
	if f.tty && !f.detach && start && !term.IsTerminal(int(os.Stdin.Fd())) && f.interactive {
		return exitCode(1, errors.New("the input device is not a TTY"))
	}
	runtime.Trace("cli: flags parsed")
	be, err := g.backend()
	if err != nil {
		return exitCode(125, err)
	}
	runtime.Trace("cli: backend open")
	if err := ensureImage(ctx, g, be, args[0], f.pull, f.platform); err != nil {
		return exitCode(125, err)
	}
	runtime.Trace("cli: image found")
	c, err := be.eng.Create(ctx, &engine.CreateRequest{Name: f.name, Config: cfg, HostConfig: hc, NetworkAliases: f.networkAlias, IP: f.ip})
	if err != nil {
		return exitCode(125, err)
	}
	if !start {
		fmt.Println(c.ID)
		return nil
	}
	if f.detach {
		if _, err := be.eng.Start(ctx, c.ID, engine.StartOptions{}); err != nil {
			return exitCode(engineStartCode(err), err)
		}
		fmt.Println(c.ID)
		return nil
	}
	return runAttached(ctx, g, be.eng, c.ID, attachOptions{stdin: f.interactive, stdout: true, stderr: true, start: true, detachKeys: f.detachKeys})
}

type attachOptions struct {
	stdin, stdout, stderr bool
	start                 bool // start the container, holding it until attached
	detachKeys            string
	noSigProxy            bool
}

// runAttached attaches the terminal (or our stdio) to a container, starting
// it if asked, and returns its exit code as an exitError.
func runAttached(ctx context.Context, g *globals, e *engine.Engine, ref string, o attachOptions) error {
	c, err := e.Get(ref)
	if err != nil {
		return exitCode(125, err)
	}
	selfCleanup := false
	var conn *supervisor.AttachConn
	if o.start {
		// Attached before the container's program runs: no output is lost.
		selfCleanup = true
		if c, conn, err = e.StartAttach(ctx, c.ID, o.stdin, engine.StartOptions{SelfCleanup: true}); err != nil {
			return exitCode(engineStartCode(err), err)
		}
	} else if conn, err = e.Attach(c, o.stdin); err != nil {
		return exitCode(125, err)
	}
	defer conn.Close()
	tty := c.Config.Tty
	keys, err := parseDetachKeys(o.detachKeys)
	if err != nil {
		return exitCode(125, err)
	}
	var restore func()
	if tty && term.IsTerminal(int(os.Stdin.Fd())) {
		if st, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
			restore = func() { term.Restore(int(os.Stdin.Fd()), st) }
			defer restore()
		}
		resize := func() {
			if w, h, err := term.GetSize(int(os.Stdin.Fd())); err == nil {
				e.Resize(c, uint16(h), uint16(w))
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				resize()
			}
		}()
	} else if !o.noSigProxy && !tty {
		// Forward signals to the container, as docker run's --sig-proxy.
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
		defer signal.Stop(sigs)
		go func() {
			for s := range sigs {
				e.Kill(context.Background(), c.ID, s.(unix.Signal))
			}
		}()
	}
	detached := make(chan struct{})
	if o.stdin {
		go func() {
			var err error
			if tty {
				err = copyDetach(conn, os.Stdin, keys)
			} else {
				_, err = io.Copy(conn, os.Stdin)
			}
			if errors.Is(err, errDetach) {
				close(detached)
				return
			}
			conn.CloseWrite()
		}()
	}
	var stdout, stderr io.Writer = os.Stdout, os.Stderr
	if !o.stdout {
		stdout = io.Discard
	}
	if !o.stderr {
		stderr = io.Discard
	}
	outDone := make(chan error, 1)
	go func() { outDone <- conn.Copy(stdout, stderr) }()
	select {
	case <-detached:
		if restore != nil {
			restore()
		}
		fmt.Fprintf(os.Stderr, "\r\nread escape sequence\r\n")
		return nil
	case <-outDone:
	}
	runtime.Trace("cli: output ended")
	// The output ended: the container exited. Wait for its cleanup (and
	// removal with --rm) unless a restart policy keeps the supervisor.
	cur, err := e.Get(c.ID)
	if err != nil || !cur.State.Running() {
		e.WaitSupervisor(c)
	} else if rp := cur.HostConfig.RestartPolicy.Name; rp == "" || rp == "no" {
		e.WaitSupervisor(c)
	}
	runtime.Trace("cli: supervisor gone")
	ex, ok := e.ExitOf(c)
	if selfCleanup {
		if err := e.Reap(ctx, c.ID); err != nil {
			fmt.Fprintln(os.Stderr, "berth: clean up", c.Name+":", err)
		}
		e.ExitOf(c) // removes what is left of a removed container
		runtime.Trace("cli: reaped")
	}
	if !ok {
		if cur, err := e.Get(c.ID); err == nil {
			return exitCode(cur.State.ExitCode, nil)
		}
		return exitCode(125, fmt.Errorf("container %s: exit status unknown", c.Name))
	}
	if ex.StartFailed {
		msg := strings.TrimSpace(ex.Error)
		if msg == "" {
			msg = "container failed to start"
		}
		return exitCode(ex.Code, errors.New(msg))
	}
	if ex.Code != 0 {
		return exitCode(ex.Code, nil)
	}
	return nil
}

var errDetach = errors.New("detached")

// parseDetachKeys parses Docker's detach key syntax ("ctrl-p,ctrl-q").
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return []byte{16, 17}, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			ch := k[5]
			switch {
			case ch >= 'a' && ch <= 'z':
				out = append(out, ch-'a'+1)
			case ch == '@':
				out = append(out, 0)
			case ch >= '[' && ch <= '_':
				out = append(out, ch-'['+27)
			default:
				return nil, fmt.Errorf("invalid detach key %q", k)
			}
		default:
			return nil, fmt.Errorf("invalid detach key %q: want a letter or ctrl-<value>", k)
		}
	}
	return out, nil
}

// copyDetach copies r to w until EOF or the detach key sequence.
func copyDetach(w io.Writer, r io.Reader, keys []byte) error {
	buf := make([]byte, 1024)
	matched := 0
	for {
		n, err := r.Read(buf)
		if n > 0 {
			out := make([]byte, 0, n+matched)
			for _, b := range buf[:n] {
				if matched < len(keys) && b == keys[matched] {
					matched++
					if matched == len(keys) {
						return errDetach
					}
					continue
				}
				if matched > 0 {
					out = append(out, keys[:matched]...)
					matched = 0
				}
				out = append(out, b)
			}
			if len(out) > 0 {
				if _, werr := w.Write(out); werr != nil {
					return werr
				}
			}
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func attachCmd(g *globals) *cobra.Command {
	var noStdin, sigProxy bool
	var detachKeys string
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach local standard input, output, and error streams to a running container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			c, err := e.Get(args[0])
			if err != nil {
				return err
			}
			if !c.State.Running() {
				return exitCode(1, fmt.Errorf("you cannot attach to a stopped container, start it first"))
			}
			return runAttached(cmd.Context(), g, e, c.ID, attachOptions{stdin: !noStdin && c.Config.OpenStdin, stdout: true, stderr: true, detachKeys: detachKeys, noSigProxy: !sigProxy})
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	cmd.Flags().BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	cmd.Flags().StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	return cmd
}
