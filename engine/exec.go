package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime"
)

// ExecOptions are the options of Exec (`berth exec`).
type ExecOptions struct {
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	Tty        bool
	Privileged bool
	// Stdio of the process; nil entries are the caller's own. Ignored for
	// a tty, whose master is returned in ExecProcess.Console.
	Stdio [3]*os.File
}

// ExecProcess is a process started by Exec, a child of the caller.
type ExecProcess struct {
	Pid     int
	Console *os.File // pty master with Tty
}

// Wait waits for the process and returns its exit code (128+signal when
// killed by a signal).
func (p *ExecProcess) Wait() (int, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(p.Pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, err
		}
		break
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// Exec runs a new process in a running container, in all its namespaces,
// cgroup and confinement (capabilities, seccomp, no_new_privileges).
func (e *Engine) Exec(ctx context.Context, ref string, o *ExecOptions) (*ExecProcess, error) {
	if len(o.Cmd) == 0 {
		return nil, errors.New("no command given to exec")
	}
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if c.State.Status == "paused" {
		return nil, fmt.Errorf("container %s is paused, unpause the container before exec: %w", c.Name, ErrConflict)
	}
	if c.State.Status != "running" {
		return nil, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	rc, err := e.runtimeContainer(c)
	if err != nil {
		return nil, err
	}
	base := rc.Spec().Process
	p := &specs.Process{
		Args: o.Cmd, Terminal: o.Tty, Cwd: base.Cwd, Env: slices.Clone(base.Env),
		User: base.User, Capabilities: base.Capabilities, NoNewPrivileges: base.NoNewPrivileges,
		ApparmorProfile: base.ApparmorProfile, Rlimits: base.Rlimits, OOMScoreAdj: base.OOMScoreAdj,
	}
	if o.WorkingDir != "" {
		p.Cwd = o.WorkingDir
	}
	rootfs := e.rootfsDir(c.ID)
	if o.User != "" {
		u, err := resolveUser(rootfs, o.User, c.HostConfig.GroupAdd)
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: u.Additional}
	}
	for _, kv := range o.Env {
		k, _, _ := strings.Cut(kv, "=")
		p.Env = slices.DeleteFunc(p.Env, func(x string) bool { return strings.HasPrefix(x, k+"=") })
		p.Env = append(p.Env, kv)
	}
	if o.Tty && !slices.ContainsFunc(p.Env, func(x string) bool { return strings.HasPrefix(x, "TERM=") }) {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if o.Privileged {
		all := boundedCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	eo := &runtime.ExecOpts{Process: p, Stdio: o.Stdio}
	var console chan *os.File
	var cerr chan error
	if o.Tty {
		dir, err := os.MkdirTemp(e.runDir(c.ID), "berth-exec-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		sock := filepath.Join(dir, "console.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			return nil, err
		}
		defer l.Close()
		console, cerr = make(chan *os.File, 1), make(chan error, 1)
		go func() {
			f, err := receiveFd(l)
			if err != nil {
				cerr <- err
				return
			}
			console <- f
		}()
		eo.ConsoleSocket = sock
	}
	pid, err := rc.Exec(eo)
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	ep := &ExecProcess{Pid: pid}
	if console != nil {
		select {
		case ep.Console = <-console:
		case err := <-cerr:
			return nil, fmt.Errorf("exec in %s: receive the terminal: %w", c.Name, err)
		}
	}
	e.event("container", "exec_start: "+strings.Join(o.Cmd, " "), c, nil)
	return ep, nil
}

// receiveFd accepts one connection on l and reads a file descriptor sent
// with SCM_RIGHTS (the console-socket protocol).
func receiveFd(l *net.UnixListener) (*os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("no file descriptor received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("no file descriptor received")
	}
	return os.NewFile(uintptr(fds[0]), "console"), nil
}
