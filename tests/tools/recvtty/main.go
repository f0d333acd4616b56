// Command recvtty is the receiving end of berth-runc's --console-socket, for
// integration tests and the conformance suite.
//
//	recvtty [--mode single|null] [--pid-file FILE] [--no-stdin] SOCKETPATH
//
// It listens on the unix socket SOCKETPATH and receives pty masters sent the
// way runc sends them (one message, the master's name as payload, the fd as
// SCM_RIGHTS).
//
// In single mode (the default) it accepts one connection, receives the
// master, then copies the master's output to its stdout and its stdin to the
// master until the container's side of the terminal is closed. In null mode it
// accepts connections until it is killed and drains every master it receives,
// so a test can run any number of terminal containers against one socket.
//
// The socket file is removed when recvtty exits normally. It is a test tool
// and imports only the console package and the standard library.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/berth-project/berth/runtime/console"
)

func main() {
	// SIGINT and SIGTERM end recvtty cleanly, removing the socket.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		stop()
		fmt.Fprintf(os.Stderr, "recvtty: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	mode    string
	pidFile string
	noStdin bool
	socket  string
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("recvtty", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.mode, "mode", "single", "single: serve one terminal on stdio; null: drain every terminal received")
	fs.StringVar(&o.pidFile, "pid-file", "", "write recvtty's pid to this file once the socket is listening")
	fs.BoolVar(&o.noStdin, "no-stdin", false, "do not copy stdin to the terminal (single mode)")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w (usage: recvtty [--mode single|null] [--pid-file FILE] [--no-stdin] SOCKETPATH)", err)
	}
	if fs.NArg() != 1 {
		return o, errors.New("usage: recvtty [--mode single|null] [--pid-file FILE] [--no-stdin] SOCKETPATH")
	}
	if o.mode != "single" && o.mode != "null" {
		return o, fmt.Errorf("unknown mode %q (want single or null)", o.mode)
	}
	o.socket = fs.Arg(0)
	return o, nil
}

// run serves the socket until the terminal ends (single mode) or ctx is
// done.
func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: o.socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.socket, err)
	}
	defer ln.Close() // also removes the socket file

	stopped := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopped()

	if o.pidFile != "" {
		if err := writePidFile(o.pidFile); err != nil {
			return err
		}
	}
	if o.mode == "null" {
		return serveNull(ln)
	}
	master, err := accept(ln)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	ln.Close()
	defer master.Close()
	if o.noStdin {
		stdin = nil
	}
	if f, ok := stdin.(*os.File); ok && console.IsTerminal(f) {
		// Interactive use: keys go to the container untouched.
		restore, err := console.MakeRaw(f)
		if err != nil {
			return err
		}
		defer restore()
	}
	done := make(chan error, 1)
	go func() { done <- serveSingle(master, stdin, stdout) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

func writePidFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// accept takes one connection and receives one master from it.
func accept(ln *net.UnixListener) (*os.File, error) {
	conn, err := ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	defer f.Close()
	master, err := console.RecvFd(f)
	if err != nil {
		return nil, err
	}
	return master, nil
}

// serveSingle copies the terminal to stdout and stdin to the terminal. It
// returns when the terminal's output ends (every slave fd closed); the end of
// stdin only stops the input side, as the container may still be writing.
func serveSingle(master *os.File, stdin io.Reader, stdout io.Writer) error {
	if stdin != nil {
		go func() {
			_, _ = io.Copy(master, stdin)
		}()
	}
	if _, err := io.Copy(stdout, master); err != nil && !isHangup(err) {
		return fmt.Errorf("copy terminal output: %w", err)
	}
	return nil
}

// serveNull drains every terminal it receives until the listener is closed.
func serveNull(ln *net.UnixListener) error {
	for {
		master, err := accept(ln)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Closed by the signal handler: a clean exit.
				return nil
			}
			fmt.Fprintf(os.Stderr, "recvtty: %v\n", err)
			continue
		}
		go func() {
			defer master.Close()
			_, _ = io.Copy(io.Discard, master)
		}()
	}
}

// isHangup reports the EIO a pty master returns once its slave is closed.
func isHangup(err error) bool {
	return errors.Is(err, syscall.EIO)
}
