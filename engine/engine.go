// Package engine is berth's container engine: the library behind the
// `berth` CLI (and a future Docker-compatible API server). It keeps
// container records in an embedded database, turns an image and Docker's
// container configuration into an OCI runtime spec, runs containers
// in-process with berth's runtime library under a small per-container
// supervisor, and tracks their state without a daemon.
//
// # Daemonless
//
// Every command works straight against the on-disk state: the metadata
// database (bbolt, opened per transaction), the runtime's state directory
// and each container's supervisor directory. Commands on one container
// serialise on a per-container lock file; commands on different
// containers run in parallel.
//
// # Processes
//
// A started container's init is the child of its supervisor (see package
// engine/supervisor), a C program inside the berth binary that never starts
// the Go runtime. The command that starts a container (run, start) mounts
// its root filesystem, builds its spec and runs runtime.Create and Start
// itself, with the supervisor starting the init's process for it
// (supervisor.Starter); for restarts by the restart policy the supervisor
// calls back into berth (`berth __start ID` does the same). It also calls
// back to clean up after the container exited (`berth __cleanup ID CODE`);
// it holds the container's stdio, writes its log, records its exit and
// applies its restart policy. So a detached
// container outlives the command that started it, and nothing long-lived
// runs Go.
//
// # Truth
//
// The record's state is what was last written; reads refresh it: a
// container recorded running whose init is gone and whose supervisor is
// dead (kill -9, reboot) is marked exited with the code the supervisor
// wrote if any, and its leftovers (mounts, runtime state, cgroups) are
// cleaned up by the next command that looks at it.
package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/storage/snapshot"
)

// Config says where the engine keeps its state.
type Config struct {
	Root   string // persistent state (default /var/lib/berth)
	RunDir string // run-time state, gone after reboot (default /run/berth)
	// Driver is the snapshotter: "overlay", "vfs", or "" to pick overlay
	// when the filesystem supports it.
	Driver string
	// BerthPath is the berth binary the supervisor calls back; default
	// the running executable.
	BerthPath string
}

// Default paths.
const (
	DefaultRoot   = "/var/lib/berth"
	DefaultRunDir = "/run/berth"
)

func (c *Config) defaults() error {
	if c.Root == "" {
		c.Root = DefaultRoot
	}
	if c.RunDir == "" {
		c.RunDir = DefaultRunDir
	}
	var err error
	if c.Root, err = filepath.Abs(c.Root); err != nil {
		return err
	}
	if c.RunDir, err = filepath.Abs(c.RunDir); err != nil {
		return err
	}
	if c.BerthPath == "" {
		if c.BerthPath, err = os.Executable(); err != nil {
			return fmt.Errorf("find the berth binary: %w", err)
		}
	}
	return nil
}

func (e *Engine) runtimeRoot() string          { return filepath.Join(e.cfg.RunDir, "runtime") }
func (e *Engine) ctrDir(id string) string      { return filepath.Join(e.cfg.Root, "containers", id) }
func (e *Engine) runDir(id string) string      { return filepath.Join(e.cfg.RunDir, "containers", id) }
func (e *Engine) bundleDir(id string) string   { return filepath.Join(e.runDir(id), "bundle") }
func (e *Engine) rootfsDir(id string) string   { return filepath.Join(e.bundleDir(id), "rootfs") }
func (e *Engine) logPath(id string) string     { return filepath.Join(e.ctrDir(id), id+"-json.log") }
func (e *Engine) lockPath(id string) string    { return filepath.Join(e.cfg.RunDir, "locks", id) }
func (e *Engine) volumesDir() string           { return filepath.Join(e.cfg.Root, "volumes") }
func (e *Engine) volumeDir(name string) string { return filepath.Join(e.volumesDir(), name) }

// lock takes the per-container lock, waiting for other berth processes
// working on the same container. The lock is a flock on a file under the
// run directory: it dies with its holder, so kill -9 never leaves a
// container locked.
func (e *Engine) lock(id string) (unlock func(), err error) {
	p := e.lockPath(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock container %s: %w", ShortID(id), err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock container %s: %w", ShortID(id), err)
	}
	return func() { unix.Close(fd) }, nil
}

// Engine runs containers. It holds no long-lived resources: every method
// works against the on-disk state, so many Engines in many processes can
// work at once.
type Engine struct {
	cfg    Config
	db     *store
	snap   snapshot.Snapshotter
	images Images
	netw   netState
}

// New returns an engine keeping its state as cfg says, container root
// filesystems in snap (on top of the images' layers) and images from
// images.
func New(cfg Config, snap snapshot.Snapshotter, images Images) (*Engine, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.Root, cfg.RunDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	return &Engine{cfg: cfg, db: &store{path: filepath.Join(cfg.Root, "engine.db")}, snap: snap, images: images}, nil
}

// Root and RunDir say where the engine keeps its state.
func (e *Engine) Root() string   { return e.cfg.Root }
func (e *Engine) RunDir() string { return e.cfg.RunDir }
