package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Starter is the engine's side of a supervisor spawned by SpawnStarter:
// the engine creates the container itself and has the supervisor start
// only the container's first process (Exec), so that the container's
// init is the supervisor's child; it then reports the outcome (Started or
// Failed). If the engine's process dies before either, the supervisor
// takes it as a failed start: it kills what Exec started, records the
// failure and, like after any run, calls the cleanup callback (if any)
// and exits.
type Starter struct {
	conn *net.UnixConn
	dir  string
}

// starterTimeout bounds each exchange with the supervisor.
const starterTimeout = 10 * time.Second

// SpawnStarter is Spawn for a start done by the engine: cfg.ClientStart
// is set, and the supervisor's first start waits for the returned
// Starter (later restarts run cfg.Start as usual).
func SpawnStarter(dir string, cfg Config, berthPath string) (int, *Starter, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return 0, nil, fmt.Errorf("spawn supervisor: %w", err)
	}
	if Alive(dir) {
		return 0, nil, fmt.Errorf("spawn supervisor: %s is already supervised", dir)
	}
	cfg.ClientStart = true
	if err := cfg.Write(dir); err != nil {
		return 0, nil, fmt.Errorf("spawn supervisor: %w", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("spawn supervisor: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "supervisor-starter"), os.NewFile(uintptr(fds[1]), "supervisor-client")
	pid, err := spawn(dir, cfg.ID, berthPath, theirs)
	theirs.Close()
	if err != nil {
		ours.Close()
		return 0, nil, err
	}
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("spawn supervisor: %w", err)
	}
	return pid, &Starter{conn: fc.(*net.UnixConn), dir: dir}, nil
}

// ExecRequest is the process Exec starts: exe (executed through its
// descriptor) with args and env, files as its descriptors 3, 4, ..., the
// container's stdio (the supervisor's) as 0-2, cloned into the new
// namespaces Cloneflags names (CLONE_NEW* flags only).
type ExecRequest struct {
	Exe        *os.File
	Args, Env  []string
	Files      []*os.File
	Cloneflags uintptr
}

func (s *Starter) call(msg string, files []*os.File) (string, error) {
	s.conn.SetDeadline(time.Now().Add(starterTimeout))
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := s.conn.WriteMsgUnix([]byte(msg), oob, nil); err != nil {
		return "", fmt.Errorf("supervisor of %s: %w", s.dir, err)
	}
	buf := make([]byte, 1024)
	n, _, _, _, err := s.conn.ReadMsgUnix(buf, nil)
	if err != nil {
		return "", fmt.Errorf("supervisor of %s: no answer: %w", s.dir, err)
	}
	if n == 0 {
		return "", fmt.Errorf("supervisor of %s: exited", s.dir)
	}
	reply := string(buf[:n])
	if m, ok := strings.CutPrefix(reply, "error "); ok {
		return "", fmt.Errorf("supervisor of %s: %s", s.dir, m)
	}
	return reply, nil
}

// Exec has the supervisor start r and returns its pid.
func (s *Starter) Exec(r ExecRequest) (int, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "exec %x\n", r.Cloneflags)
	for _, l := range []struct {
		key  string
		strs []string
	}{{"arg", r.Args}, {"env", r.Env}} {
		for _, a := range l.strs {
			if strings.ContainsAny(a, "\n\x00") {
				return 0, fmt.Errorf("supervisor exec: %s %q contains a newline or NUL", l.key, a)
			}
			fmt.Fprintf(&b, "%s %s\n", l.key, a)
		}
	}
	reply, err := s.call(b.String(), append([]*os.File{r.Exe}, r.Files...))
	if err != nil {
		return 0, err
	}
	p, ok := strings.CutPrefix(reply, "ok ")
	pid, err := strconv.Atoi(p)
	if !ok || err != nil || pid <= 0 {
		return 0, fmt.Errorf("supervisor of %s: exec: unexpected answer %q", s.dir, reply)
	}
	return pid, nil
}

// InitPid tells the supervisor the container's init pid when it is not
// the process Exec started (an intermediate forked it), so that a failed
// start kills it too.
func (s *Starter) InitPid(pid int) error {
	_, err := s.call("pid "+strconv.Itoa(pid), nil)
	return err
}

// Started tells the supervisor the container runs with init pid; the
// Starter is done.
func (s *Starter) Started(pid int) error {
	defer s.conn.Close()
	_, err := s.call("started "+strconv.Itoa(pid), nil)
	return err
}

// Failed tells the supervisor the start failed with code and msg (its
// exit record says so) and that the engine cleaned up after it: no
// cleanup callback runs. The Starter is done.
func (s *Starter) Failed(code int, msg string) error {
	defer s.conn.Close()
	if code < 0 || code > 255 {
		code = 125
	}
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err := s.call(fmt.Sprintf("failed %d %s", code, msg), nil)
	return err
}

// Close ends the exchange; before Started it means a failed start.
func (s *Starter) Close() error {
	err := s.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
