package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/engine/supervisor"
)

// spawnSupervisor starts the container's supervisor, which calls back
// `berth __start` to make the container, or with clientStart waits for the
// returned Starter to start it (and calls back for restarts).
func (e *Engine) spawnSupervisor(c *Container, waitAttach, selfCleanup, clientStart bool) (*supervisor.Starter, error) {
	dir := e.runDir(c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hc := c.HostConfig
	maxSize, maxFiles, err := logLimits(hc)
	if err != nil {
		return nil, err
	}
	global := []string{e.cfg.BerthPath, "--root", e.cfg.Root, "--run-dir", e.cfg.RunDir, "--storage-driver", e.cfg.Driver}
	console := ""
	if c.Config.Tty {
		console = filepath.Join(dir, supervisor.ConsoleSocket)
	}
	cfg := supervisor.Config{
		ID:         c.ID,
		LogPath:    e.logPath(c.ID),
		LogMaxSize: maxSize,
		LogMaxFile: maxFiles,
		Tty:        c.Config.Tty,
		OpenStdin:  c.Config.OpenStdin,
		StdinOnce:  c.Config.StdinOnce,
		WaitAttach: waitAttach,
		Restart:    string(hc.RestartPolicy.Name),
		Start:      append(append([]string{}, global...), "__start", c.ID, console, filepath.Join(dir, supervisor.PidFile)),
	}
	if !selfCleanup {
		cfg.Cleanup = append(append([]string{}, global...), "__cleanup", c.ID)
	}
	if cfg.Restart == string(RestartOnFailureName) {
		cfg.RestartMaxRetries = hc.RestartPolicy.MaximumRetryCount
	}
	if hc.LogConfig.Type == "none" {
		cfg.LogPath = ""
	}
	if h := c.Config.Healthcheck; h != nil && len(h.Test) > 0 && h.Test[0] != "NONE" {
		cfg.HealthInterval = orDefault(h.Interval, 30*time.Second)
		cfg.HealthTimeout = orDefault(h.Timeout, 30*time.Second)
		cfg.HealthStartPeriod = h.StartPeriod
		cfg.HealthRetries = h.Retries
		if cfg.HealthRetries == 0 {
			cfg.HealthRetries = 3
		}
		cfg.Health = append(append([]string{}, global...), "__health", c.ID)
	}
	var st *supervisor.Starter
	if clientStart {
		_, st, err = supervisor.SpawnStarter(dir, cfg, e.cfg.BerthPath)
	} else {
		_, err = supervisor.Spawn(dir, cfg, e.cfg.BerthPath)
	}
	if err != nil {
		return nil, fmt.Errorf("start the supervisor of %s: %w", c.Name, err)
	}
	return st, nil
}

// RestartOnFailureName is Docker's on-failure policy name.
const RestartOnFailureName = "on-failure"

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (e *Engine) supervisorAlive(id string) bool { return supervisor.Alive(e.runDir(id)) }

// readExit reads the exit the supervisor recorded.
func (e *Engine) readExit(id string) (int, time.Time, bool) {
	ex, ok, err := supervisor.ReadExit(e.runDir(id))
	if err != nil || !ok {
		return 0, time.Time{}, false
	}
	return ex.Code, ex.FinishedAt, true
}

func (e *Engine) stopRequested(id string) {
	if e.supervisorAlive(id) {
		supervisor.StopRequested(e.runDir(id))
	}
}

// killSupervisor ends a supervisor (rm -f): its container is dead, and it
// must not restart it or call back.
func (e *Engine) killSupervisor(id string) {
	dir := e.runDir(id)
	if pid, ok := supervisor.Pid(dir); ok {
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			unix.Poll(fds, 5000)
			unix.Close(fd)
		}
	}
}

// Attach connects to a container's stdio through its supervisor.
func (e *Engine) Attach(c *Container, stdin bool) (*supervisor.AttachConn, error) {
	if !e.supervisorAlive(c.ID) {
		return nil, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	return supervisor.Attach(e.runDir(c.ID), stdin)
}

// Resize sets the size of a container's terminal.
func (e *Engine) Resize(c *Container, rows, cols uint16) error {
	return supervisor.Resize(e.runDir(c.ID), rows, cols)
}

// WaitSupervisor waits until the container's supervisor exited (after a
// foreground run: the container was cleaned up, or removed with --rm).
func (e *Engine) WaitSupervisor(c *Container) {
	if pid, ok := supervisor.Pid(e.runDir(c.ID)); ok {
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(fds, -1)
				if n > 0 || err != unix.EINTR {
					break
				}
			}
			unix.Close(fd)
		}
	}
}

// ExitOf returns the exit the supervisor recorded for the container's
// last run, and removes the run directory of a removed container.
func (e *Engine) ExitOf(c *Container) (supervisor.Exit, bool) {
	dir := e.runDir(c.ID)
	ex, ok, _ := supervisor.ReadExit(dir)
	if _, err := e.getRaw(c.ID); err != nil && !e.supervisorAlive(c.ID) {
		os.RemoveAll(dir)
	}
	return ex, ok
}
