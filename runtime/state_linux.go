package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/atomicfile"
)

// Status values, as the OCI runtime spec names them.
const (
	StatusCreating = "creating"
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusStopped  = "stopped"
	StatusPaused   = "paused"
)

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

// validID reports whether id uses only [A-Za-z0-9_+.-] (no regexp: every
// berth-runc process would pay for compiling one at start-up).
func validID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '+' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateID checks a container id as runc does.
func ValidateID(id string) error {
	if id == "" || len(id) > 1024 || id == "." || id == ".." || !validID(id) {
		return fmt.Errorf("%w %q: use 1 to 1024 of [A-Za-z0-9_+.-], not . or ..", ErrInvalidID, id)
	}
	return nil
}

// saved is what state.json holds for one container.
type saved struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pid_start,omitempty"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Phase       string            `json:"phase"` // creating or created: what the runtime finished
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	NoPivot     bool              `json:"no_pivot,omitempty"`
	ExitStatus  *int              `json:"exit_status,omitempty"`
	Spec        *specs.Spec       `json:"config"`
}

// Container is a handle on one container's on-disk state.
type Container struct {
	root string // the runtime's state root
	dir  string // root/id
	st   saved
}

// ID returns the container id.
func (c *Container) ID() string { return c.st.ID }

// Pid returns the host pid of the container's init (0 before it exists).
func (c *Container) Pid() int { return c.st.Pid }

// Bundle returns the bundle directory.
func (c *Container) Bundle() string { return c.st.Bundle }

// Spec returns the container's configuration.
func (c *Container) Spec() *specs.Spec { return c.st.Spec }

// Created returns the creation time.
func (c *Container) Created() time.Time { return c.st.Created }

// Owner returns the user that created the container.
func (c *Container) Owner() string { return c.st.Owner }

// Rootfs returns the host path of the root filesystem.
func (c *Container) Rootfs() string { return c.st.Rootfs }

// ExitStatus returns the exit status when berth-runc saw the container exit.
func (c *Container) ExitStatus() (int, bool) {
	if c.st.ExitStatus == nil {
		return 0, false
	}
	return *c.st.ExitStatus, true
}

func (c *Container) save() error {
	data, err := json.Marshal(&c.st)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(c.dir, stateFile), data, 0o600, false); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// Load opens the state of container id under root.
func Load(root, id string) (*Container, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(dir); serr == nil {
				// Killed before its first state write: a container in
				// the making, which delete can clean up.
				return &Container{root: root, dir: dir, st: saved{ID: id, Phase: StatusCreating}}, nil
			}
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("container %s: read state: %w", id, err)
	}
	c := &Container{root: root, dir: dir}
	if err := json.Unmarshal(data, &c.st); err != nil {
		return nil, fmt.Errorf("container %s: corrupt state file: %w", id, err)
	}
	return c, nil
}

// List returns every container under root, sorted by id.
func List(root string) ([]*Container, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Container
	for _, e := range entries {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		c, err := Load(root, e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// procStart returns the start time (in clock ticks since boot) of pid, and
// whether it is a zombie; ok is false when there is no such process.
func procStart(pid int) (start uint64, zombie, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, false, false
	}
	start, _ = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", true
}

// alive reports whether the container's init still runs (same pid, same start time).
func (c *Container) alive() bool {
	if c.st.Pid <= 0 {
		return false
	}
	start, zombie, ok := procStart(c.st.Pid)
	return ok && !zombie && (c.st.PidStart == 0 || start == c.st.PidStart)
}

// Status computes the container's current status.
func (c *Container) Status() string {
	if c.st.Phase == StatusCreating {
		if c.alive() {
			return StatusCreating
		}
		return StatusStopped
	}
	if !c.alive() {
		return StatusStopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, fifoName)); err == nil {
		return StatusCreated
	}
	if c.frozen() {
		return StatusPaused
	}
	return StatusRunning
}

// frozen reports a paused container (freezer); the cgroups issue wires it.
func (c *Container) frozen() bool {
	for k, p := range c.st.CgroupPaths {
		if k == "freezer" {
			b, err := os.ReadFile(filepath.Join(p, "freezer.state"))
			return err == nil && strings.TrimSpace(string(b)) == "FROZEN"
		}
		if k == "" {
			b, err := os.ReadFile(filepath.Join(p, "cgroup.freeze"))
			return err == nil && strings.TrimSpace(string(b)) == "1"
		}
	}
	return false
}

// State returns the OCI state of the container.
func (c *Container) State() specs.State {
	st := specs.State{
		Version: specs.Version,
		ID:      c.st.ID,
		Status:  specs.ContainerState(c.Status()),
		Bundle:  c.st.Bundle,
	}
	if st.Status != StatusStopped {
		st.Pid = c.st.Pid
	}
	if c.st.Spec != nil {
		st.Annotations = c.st.Spec.Annotations
	}
	return st
}

// lock takes an exclusive lock on the container's directory; the returned
// function releases it.
func (c *Container) lock() (func(), error) {
	fd, err := unix.Open(c.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("container %s: %w", c.st.ID, ErrNotExist)
		}
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return func() { unix.Close(fd) }, nil
}
