package supervisor

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Files in a supervisor's run directory.
const (
	confFile   = "supervisor.conf"
	pidFile    = "supervisor.pid"
	logFile    = "supervisor.log" // the supervisor's own errors, and the cleanup and health callbacks' stderr
	exitFile   = "exit"
	attachSock = "attach.sock"
	ctlSock    = "ctl.sock"
	// ConsoleSocket is the socket in the run directory that receives the
	// container's pty master when Config.Tty is set (pass it to the
	// runtime as the console socket).
	ConsoleSocket = "console.sock"
	// PidFile is the file in the run directory where the start callback
	// writes the container init's pid.
	PidFile = "pid"
	// StartErrFile is where the start callback's error message goes
	// (it is the callback's descriptor 3).
	StartErrFile = "start.err"
)

const envSupervise = "_BERTH_SUPERVISE"

// spawnTimeout bounds how long Spawn waits for the supervisor to be ready.
const spawnTimeout = 10 * time.Second

// Spawn writes cfg to dir/supervisor.conf and starts a supervisor for dir:
// berthPath re-executed with _BERTH_SUPERVISE=dir, in a new session, stdio
// on /dev/null. It removes the previous run's exit record and pid file
// first. It returns the supervisor's pid once the supervisor is ready
// (sockets listening, pid file written), or its error if it exited. It does
// not wait for the container to start.
func Spawn(dir string, cfg Config, berthPath string) (int, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return 0, fmt.Errorf("spawn supervisor: %w", err)
	}
	if Alive(dir) {
		return 0, fmt.Errorf("spawn supervisor: %s is already supervised", dir)
	}
	if err := cfg.Write(dir); err != nil {
		return 0, fmt.Errorf("spawn supervisor: %w", err)
	}
	return spawn(dir, cfg.ID, berthPath, nil)
}

func spawn(dir, id, berthPath string, client *os.File) (int, error) {
	for _, name := range []string{exitFile, PidFile, pidFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("spawn supervisor: %w", err)
		}
	}
	env := []string{envSupervise + "=" + dir}
	for _, kv := range os.Environ() {
		// The runtime's pre-Go hook must not fire in the supervisor either.
		if !strings.HasPrefix(kv, envSupervise+"=") && !strings.HasPrefix(kv, "_BERTH_INITPIPE=") {
			env = append(env, kv)
		}
	}
	name := "berth-supervisor"
	// The supervisor closes its end of this pipe once it is ready.
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("spawn supervisor: %w", err)
	}
	defer readyR.Close()
	cmd := &exec.Cmd{
		Path:        berthPath,
		Args:        []string{name, id},
		Env:         append(env, "_BERTH_SUPERVISE_READY=3"),
		Dir:         dir,
		ExtraFiles:  []*os.File{readyW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if client != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, client)
		cmd.Env = append(cmd.Env, "_BERTH_SUPERVISE_CLIENT=4")
	}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return 0, fmt.Errorf("spawn supervisor %s: %w", berthPath, err)
	}
	ready := make(chan struct{})
	go func() {
		var b [1]byte
		readyR.Read(b[:]) // EOF once the supervisor closed its end (or died)
		close(ready)
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // reaps it whenever it exits
	pid := cmd.Process.Pid
	deadline := time.NewTimer(spawnTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				// Status 0 only after a whole life: it was ready and is
				// already done (e.g. a start failure); setup errors exit 1.
				return pid, nil
			}
			return 0, fmt.Errorf("supervisor for %s exited: %v%s", dir, err, lastLogLine(dir))
		case <-deadline.C:
			cmd.Process.Kill()
			return 0, fmt.Errorf("supervisor for %s not ready after %s%s", dir, spawnTimeout, lastLogLine(dir))
		case <-ready:
			if p, _, err := readPidFile(dir); err == nil && p == pid {
				return pid, nil
			}
			ready = nil // died before ready: done tells
		case <-tick.C:
			if p, _, err := readPidFile(dir); err == nil && p == pid {
				return pid, nil
			}
		}
	}
}

func lastLogLine(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, logFile))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	last := lines[len(lines)-1]
	if _, msg, ok := strings.Cut(last, " "); ok {
		return ": " + msg
	}
	return ""
}

func readPidFile(dir string) (pid int, start uint64, err error) {
	data, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("malformed %s", pidFile)
	}
	if pid, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, fmt.Errorf("malformed %s: %w", pidFile, err)
	}
	if start, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("malformed %s: %w", pidFile, err)
	}
	return pid, start, nil
}

// procStart returns the start time (clock ticks since boot) of pid, from
// field 22 of /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Pid returns the pid of dir's supervisor if it is running.
func Pid(dir string) (int, bool) {
	pid, start, err := readPidFile(dir)
	if err != nil {
		return 0, false
	}
	got, err := procStart(pid)
	if err != nil || got != start {
		return 0, false
	}
	// A zombie (exited, not yet reaped by its parent) is not alive.
	if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if i := strings.LastIndexByte(string(data), ')'); i >= 0 && i+2 < len(data) && data[i+2] == 'Z' {
			return 0, false
		}
	}
	return pid, true
}

// Alive reports whether dir's supervisor is running: its pid file names a
// live process started at the recorded time (not a recycled pid).
func Alive(dir string) bool {
	_, ok := Pid(dir)
	return ok
}

// Wait waits until dir's supervisor has exited (after its last cleanup).
func Wait(ctx context.Context, dir string) error {
	for {
		pid, ok := Pid(dir)
		if !ok {
			return nil
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil
			}
			return fmt.Errorf("wait for supervisor %d: %w", pid, err)
		}
		if !Alive(dir) { // the pid was recycled between the two checks
			unix.Close(fd)
			return nil
		}
		err = pollExit(ctx, fd)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
}

func pollExit(ctx context.Context, fd int) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 50)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for supervisor: %w", err)
		}
		if n > 0 {
			// Readable: exited; a zombie still counts as gone for Pid.
			return nil
		}
	}
}

// dial connects to the socket name in dir, through /proc/self/fd when the
// path is too long for a socket address.
func dial(dir, name string) (*net.UnixConn, error) {
	path := filepath.Join(dir, name)
	if len(path) >= 100 {
		dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", dir, err)
		}
		defer unix.Close(dfd)
		path = fmt.Sprintf("/proc/self/fd/%d/%s", dfd, name)
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect to supervisor of %s: %w", dir, err)
	}
	return c, nil
}

// Status is the supervisor's view of its container ("status" command).
type Status struct {
	// State: created (waiting for the first attach), starting, running,
	// exiting, restarting (cleaning up or waiting for the back-off before a
	// restart), exited (cleaning up, then the supervisor exits).
	State         string `json:"state"`
	Pid           int    `json:"pid"` // container init, 0 when not running
	RestartCount  int    `json:"restart_count"`
	Health        string `json:"health"` // none, starting, healthy, unhealthy
	FailingStreak int    `json:"failing_streak"`
	StartedAt     string `json:"started_at"` // RFC 3339 of the current or last run
	StopRequested bool   `json:"stop_requested"`
}

func command(dir, cmd string) (string, error) {
	c, err := dial(dir, ctlSock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", fmt.Errorf("supervisor of %s: %s: %w", dir, cmd, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("supervisor of %s: %s: no answer: %w", dir, cmd, err)
	}
	line = strings.TrimSuffix(line, "\n")
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return "", fmt.Errorf("supervisor of %s: %s", dir, msg)
	}
	return line, nil
}

// Resize sets the container terminal's size.
func Resize(dir string, rows, cols uint16) error {
	_, err := command(dir, fmt.Sprintf("resize %d %d", rows, cols))
	return err
}

// StopRequested tells the supervisor the user is stopping the container:
// it will not be restarted, whatever the policy.
func StopRequested(dir string) error {
	_, err := command(dir, "stop-requested")
	return err
}

// GetStatus asks the supervisor for its container's state.
func GetStatus(dir string) (Status, error) {
	line, err := command(dir, "status")
	if err != nil {
		return Status{}, err
	}
	var s Status
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return Status{}, fmt.Errorf("supervisor of %s: status %q: %w", dir, line, err)
	}
	return s, nil
}

// AttachConn is a connection to the container's stdio.
type AttachConn struct {
	conn *net.UnixConn
	tty  bool
}

// Attach connects to the container's output (stdout and stderr) and, with
// stdin, to its input (Config.OpenStdin must be set for the input to
// reach the container). With Config.WaitAttach the first Attach starts the
// container.
func Attach(dir string, stdin bool) (*AttachConn, error) {
	c, err := dial(dir, attachSock)
	if err != nil {
		return nil, err
	}
	flags := byte(2 | 4)
	if stdin {
		flags |= 1
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var ack [1]byte
	if _, err := c.Write([]byte{flags}); err == nil {
		_, err = io.ReadFull(c, ack[:])
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("attach to %s: %w", dir, err)
	}
	c.SetDeadline(time.Time{})
	if ack[0] != 'T' && ack[0] != 'M' {
		c.Close()
		return nil, fmt.Errorf("attach to %s: unexpected answer %q", dir, ack[0])
	}
	return &AttachConn{conn: c, tty: ack[0] == 'T'}, nil
}

// Tty reports whether the container has a terminal (its output is one raw
// stream).
func (a *AttachConn) Tty() bool { return a.tty }

// Write sends p to the container's stdin.
func (a *AttachConn) Write(p []byte) (int, error) { return a.conn.Write(p) }

// CloseWrite ends the container's input from this client.
func (a *AttachConn) CloseWrite() error { return a.conn.CloseWrite() }

// Close closes the connection.
func (a *AttachConn) Close() error { return a.conn.Close() }

// Copy copies the container's output to stdout and stderr (with a
// terminal everything goes to stdout) until the run ends, returns nil at
// the end of the run, and closes the connection (the exit record is written
// by then: ReadExit).
func (a *AttachConn) Copy(stdout, stderr io.Writer) error {
	defer a.conn.Close()
	if a.tty {
		_, err := io.Copy(stdout, a.conn)
		return err
	}
	return Demux(a.conn, stdout, stderr)
}

// Demux splits a Docker stdcopy stream into stdout and stderr.
func Demux(r io.Reader, stdout, stderr io.Writer) error {
	br := bufio.NewReaderSize(r, 32*1024)
	var hdr [8]byte
	buf := make([]byte, 32*1024)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read attach stream: %w", err)
		}
		var w io.Writer
		switch hdr[0] {
		case 1:
			w = stdout
		case 2:
			w = stderr
		default:
			return fmt.Errorf("attach stream: unknown stream %d", hdr[0])
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		if w == nil {
			w = io.Discard
		}
		got, err := io.CopyBuffer(w, io.LimitReader(br, n), buf)
		if err != nil {
			return fmt.Errorf("attach stream: %w", err)
		}
		if got < n {
			return fmt.Errorf("attach stream: %w", io.ErrUnexpectedEOF)
		}
	}
}
