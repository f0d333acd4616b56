package runccli

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/console"
)

// terminal is the console socket berth-runc makes for itself when run or
// exec ask for a terminal without --console-socket: it receives the pty
// master and connects it to our own stdio.
type terminal struct {
	dir      string
	socket   string
	ln       *net.UnixListener
	master   *os.File
	restore  *unix.Termios
	copyDone sync.WaitGroup
}

func newTerminal() (*terminal, error) {
	dir, err := os.MkdirTemp("", "berth-runc-tty-")
	if err != nil {
		return nil, err
	}
	t := &terminal{dir: dir, socket: filepath.Join(dir, "console.sock")}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: t.socket, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	t.ln = ln
	return t, nil
}

// Attach receives the master and starts copying.
func (t *terminal) Attach() error {
	conn, err := t.ln.AcceptUnix()
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	f, err := conn.File()
	conn.Close()
	if err != nil {
		return err
	}
	t.master, err = console.RecvFd(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("receive terminal: %w", err)
	}
	if tio, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		t.restore = tio
		raw := *tio
		raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		raw.Oflag &^= unix.OPOST
		raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		raw.Cflag &^= unix.CSIZE | unix.PARENB
		raw.Cflag |= unix.CS8
		unix.IoctlSetTermios(0, unix.TCSETS, &raw)
		if ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ); err == nil {
			unix.IoctlSetWinsize(int(t.master.Fd()), unix.TIOCSWINSZ, ws)
		}
	}
	go io.Copy(t.master, os.Stdin)
	t.copyDone.Add(1)
	go func() {
		defer t.copyDone.Done()
		io.Copy(os.Stdout, t.master)
	}()
	return nil
}

// Wait waits until the container's output is drained.
func (t *terminal) Wait() { t.copyDone.Wait() }

func (t *terminal) Close() {
	if t.restore != nil {
		unix.IoctlSetTermios(0, unix.TCSETS, t.restore)
	}
	if t.master != nil {
		t.master.Close()
	}
	t.ln.Close()
	os.RemoveAll(t.dir)
}
