package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Pause freezes every process of the container (cgroup freezer).
func (c *Container) Pause() error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st := c.Status(); st != StatusRunning && st != StatusCreated {
		return fmt.Errorf("container %s is %s: %w", c.st.ID, st, ErrNotRunning)
	}
	return c.setFrozen(true)
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st := c.Status(); st != StatusPaused {
		return fmt.Errorf("container %s is %s, not paused", c.st.ID, st)
	}
	return c.setFrozen(false)
}

// setFrozen writes the freezer state and waits until the kernel reports it.
func (c *Container) setFrozen(frozen bool) error {
	var file, want, value, done string
	if p, ok := c.st.CgroupPaths["freezer"]; ok {
		file, done = filepath.Join(p, "freezer.state"), filepath.Join(p, "freezer.state")
		value, want = "THAWED", "THAWED"
		if frozen {
			value, want = "FROZEN", "FROZEN"
		}
	} else if p, ok := c.st.CgroupPaths[""]; ok {
		file, done = filepath.Join(p, "cgroup.freeze"), filepath.Join(p, "cgroup.events")
		value, want = "0", "frozen 0"
		if frozen {
			value, want = "1", "frozen 1"
		}
	} else {
		return fmt.Errorf("container %s: no freezer cgroup", c.st.ID)
	}
	if err := os.WriteFile(file, []byte(value), 0); err != nil {
		return fmt.Errorf("container %s: freezer: %w", c.st.ID, err)
	}
	for delay := time.Millisecond; delay < 2*time.Second; delay *= 2 {
		data, err := os.ReadFile(done)
		if err != nil {
			return fmt.Errorf("container %s: freezer: %w", c.st.ID, err)
		}
		if strings.Contains(string(data), want) {
			return nil
		}
		time.Sleep(delay)
	}
	return fmt.Errorf("container %s: freezer did not reach %s", c.st.ID, want)
}
