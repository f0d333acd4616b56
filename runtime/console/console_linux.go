package console

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// NewPty opens ptmx at ptmxPath (inside the container after pivot_root this is
// "/dev/ptmx"), unlocks it, and returns the master and the slave's path (e.g.
// /dev/pts/0), found via TIOCGPTN.
//
// The slave path is resolved from ptmxPath: the character device "<dir>/ptmx"
// gives "<dir>/pts/N"; a devpts instance's own "ptmx", opened directly or
// through a symlink such as /dev/ptmx -> pts/ptmx, gives "N" beside it.
func NewPty(ptmxPath string) (master *os.File, slavePath string, err error) {
	fd, err := unix.Open(ptmxPath, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w", ptmxPath, err)
	}
	master = os.NewFile(uintptr(fd), ptmxPath)
	defer func() {
		if err != nil {
			master.Close()
		}
	}()
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, "", fmt.Errorf("unlock pty %s: %w", ptmxPath, err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return nil, "", fmt.Errorf("get pty number of %s: %w", ptmxPath, err)
	}
	dir, err := ptsDir(fd, ptmxPath)
	if err != nil {
		return nil, "", err
	}
	return master, filepath.Join(dir, strconv.FormatUint(uint64(n), 10)), nil
}

// ptsDir returns the directory holding the slaves of the multiplexer opened
// as fd from ptmxPath. The devpts-internal ptmx (reached directly or through
// the usual /dev/ptmx -> pts/ptmx symlink) lives beside its slaves; the
// legacy character device /dev/ptmx serves the devpts mounted on the pts
// directory next to it.
func ptsDir(fd int, ptmxPath string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return "", fmt.Errorf("statfs %s: %w", ptmxPath, err)
	}
	if st.Type != unix.DEVPTS_SUPER_MAGIC {
		return filepath.Join(filepath.Dir(ptmxPath), "pts"), nil
	}
	real, err := filepath.EvalSymlinks(ptmxPath)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ptmxPath, err)
	}
	return filepath.Dir(real), nil
}

// SendFd sends f over the unix socket sock with SCM_RIGHTS; the message
// payload is name (runc sends the pty master's name).
func SendFd(sock *os.File, name string, f *os.File) error {
	if name == "" {
		// A zero-length payload is not delivered on a stream socket.
		name = f.Name()
	}
	conn, err := sock.SyscallConn()
	if err != nil {
		return fmt.Errorf("send fd: %w", err)
	}
	fconn, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("send fd: %w", err)
	}
	var sendErr error
	ctlErr := fconn.Control(func(ffd uintptr) {
		oob := unix.UnixRights(int(ffd))
		err := conn.Write(func(sfd uintptr) bool {
			for {
				sendErr = unix.Sendmsg(int(sfd), []byte(name), oob, nil, 0)
				if !errors.Is(sendErr, unix.EINTR) {
					break
				}
			}
			return !errors.Is(sendErr, unix.EAGAIN)
		})
		if sendErr == nil {
			sendErr = err
		}
	})
	if ctlErr != nil {
		return fmt.Errorf("send fd %s: %w", name, ctlErr)
	}
	if sendErr != nil {
		return fmt.Errorf("send fd %s: %w", name, sendErr)
	}
	return nil
}

// maxNameLen bounds the payload RecvFd accepts; runc's receivers use the
// same page-sized buffer.
const maxNameLen = 4096

// RecvFd receives one fd sent by SendFd. The returned file carries the name
// that was sent as the message payload.
func RecvFd(sock *os.File) (*os.File, error) {
	conn, err := sock.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("receive fd: %w", err)
	}
	name := make([]byte, maxNameLen)
	// Room for a few fds, so a peer sending more than one is detected and
	// the extra descriptors are closed instead of leaked.
	oob := make([]byte, unix.CmsgSpace(4*4))
	var n, oobn, flags int
	var recvErr error
	err = conn.Read(func(fd uintptr) bool {
		for {
			n, oobn, flags, _, recvErr = unix.Recvmsg(int(fd), name, oob, unix.MSG_CMSG_CLOEXEC)
			if !errors.Is(recvErr, unix.EINTR) {
				break
			}
		}
		return !errors.Is(recvErr, unix.EAGAIN)
	})
	if recvErr == nil {
		recvErr = err
	}
	if recvErr != nil {
		return nil, fmt.Errorf("receive fd: %w", recvErr)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive fd: %w", err)
	}
	if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		closeAll(fds)
		return nil, errors.New("receive fd: message truncated")
	}
	switch len(fds) {
	case 0:
		if n == 0 {
			return nil, errors.New("receive fd: peer closed the connection without sending one")
		}
		return nil, errors.New("receive fd: message carried no file descriptor")
	case 1:
	default:
		closeAll(fds)
		return nil, fmt.Errorf("receive fd: expected 1 file descriptor, got %d", len(fds))
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// SetupSlave makes the slave the controlling terminal of the calling process:
// setsid (if not already leader), TIOCSCTTY, dup2 to 0,1,2.
//
// It changes process-wide state (session, stdio), so it is meant for the
// container's init or exec process right before it executes the user's
// program.
func SetupSlave(slavePath string) error {
	if unix.Getpid() != sessionID() {
		if _, err := unix.Setsid(); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
	}
	fd, err := unix.Open(slavePath, unix.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", slavePath, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCSCTTY, 0); err != nil {
		unix.Close(fd)
		return fmt.Errorf("make %s the controlling terminal: %w", slavePath, err)
	}
	for target := 0; target <= 2; target++ {
		if fd == target {
			continue
		}
		if err := unix.Dup3(fd, target, 0); err != nil {
			if fd > 2 {
				unix.Close(fd)
			}
			return fmt.Errorf("dup %s to fd %d: %w", slavePath, target, err)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
	return nil
}

func sessionID() int {
	sid, err := unix.Getsid(0)
	if err != nil {
		return -1
	}
	return sid
}

// SetSize sets the window size of the terminal f (TIOCSWINSZ). f may be
// either side of a pty pair.
func SetSize(f *os.File, size Size) error {
	ws := &unix.Winsize{Row: size.Rows, Col: size.Cols}
	if err := control(f, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) }); err != nil {
		return fmt.Errorf("set window size of %s: %w", f.Name(), err)
	}
	return nil
}

// GetSize returns the window size of the terminal f (TIOCGWINSZ).
func GetSize(f *os.File) (Size, error) {
	var ws *unix.Winsize
	err := control(f, func(fd int) error {
		var err error
		ws, err = unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		return err
	})
	if err != nil {
		return Size{}, fmt.Errorf("get window size of %s: %w", f.Name(), err)
	}
	return Size{Rows: ws.Row, Cols: ws.Col}, nil
}

// ClearONLCR turns off the NL -> CR NL translation of the terminal f, so a
// receiver copying the master's output to a non-terminal sees the bytes the
// container wrote. runc does this on the masters it receives.
func ClearONLCR(f *os.File) error {
	err := control(f, func(fd int) error {
		t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		t.Oflag &^= unix.ONLCR
		return unix.IoctlSetTermios(fd, unix.TCSETS, t)
	})
	if err != nil {
		return fmt.Errorf("clear onlcr on %s: %w", f.Name(), err)
	}
	return nil
}

// MakeRaw puts the terminal f into raw mode (no echo, no line editing, no
// signal characters, no output processing) and returns a function restoring
// the previous mode.
func MakeRaw(f *os.File) (restore func() error, err error) {
	var saved unix.Termios
	err = control(f, func(fd int) error {
		t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		saved = *t
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		return unix.IoctlSetTermios(fd, unix.TCSETS, t)
	})
	if err != nil {
		return nil, fmt.Errorf("set raw mode on %s: %w", f.Name(), err)
	}
	return func() error {
		err := control(f, func(fd int) error { return unix.IoctlSetTermios(fd, unix.TCSETS, &saved) })
		if err != nil {
			return fmt.Errorf("restore terminal mode of %s: %w", f.Name(), err)
		}
		return nil
	}, nil
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return control(f, func(fd int) error {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	}) == nil
}

// control runs fn on f's descriptor without switching f to blocking mode.
func control(f *os.File, fn func(fd int) error) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := conn.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}
