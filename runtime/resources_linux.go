package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/cgroups"
)

func init() {
	// Notes about ignored settings go where the runtime's warnings go
	// (Warn is replaced by the caller later: look it up on every call).
	cgroups.Warn = func(format string, a ...any) { Warn(format, a...) }
}

// createResources is what Create applies to a new container's cgroup: the
// spec's resources, and, when the spec restricts devices, allow rules for
// the devices it lists in linux.devices and for the few every container
// needs (/dev/null, zero, full, random, urandom, tty, ptmx, pts), as runc
// adds them. Device rules are left out when not running as root: an
// unprivileged user cannot change them.
func createResources(spec *specs.Spec) *specs.LinuxResources {
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return nil
	}
	r := *spec.Linux.Resources
	if len(r.Devices) == 0 {
		return &r
	}
	if os.Geteuid() != 0 {
		r.Devices = nil
		return &r
	}
	devs := append([]specs.LinuxDeviceCgroup(nil), r.Devices...)
	for _, d := range spec.Linux.Devices {
		typ := d.Type
		switch typ {
		case "u":
			typ = "c"
		case "b", "c":
		default:
			continue // fifos are not device-controlled
		}
		major, minor := d.Major, d.Minor
		devs = append(devs, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	r.Devices = append(devs, cgroups.DefaultDeviceRules()...)
	return &r
}

// applyResources sets a new container's resource limits on its cgroup.
func applyResources(cg *cgroups.Manager, spec *specs.Spec) error {
	r := createResources(spec)
	if r == nil {
		return nil
	}
	tracef("create: applying resources")
	if err := cg.Set(r); err != nil {
		// Create's cleanup removes the container's groups; the shared
		// parent of berth's default groups goes too when this create
		// made it and nothing else is in it (as Delete does).
		if cg.Destroy() == nil {
			for _, p := range cg.Paths() {
				if parent := filepath.Dir(p); filepath.Base(parent) == "berth" {
					unix.Rmdir(parent)
				}
			}
		}
		return err
	}
	tracef("create: resources applied")
	return nil
}

// mergeResources returns base with every field that r sets replaced by r's
// value: objects merge field by field (so an update of memory.limit keeps
// memory.swap), lists and values replace, unified and rdma merge by key.
func mergeResources(base, r *specs.LinuxResources) (*specs.LinuxResources, error) {
	if base == nil {
		base = &specs.LinuxResources{}
	}
	var a, b map[string]any
	for _, x := range []struct {
		v   *specs.LinuxResources
		dst *map[string]any
	}{{base, &a}, {r, &b}} {
		data, err := json.Marshal(x.v)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, x.dst); err != nil {
			return nil, err
		}
	}
	mergeJSON(a, b)
	data, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	out := &specs.LinuxResources{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, err
	}
	return out, nil
}

func mergeJSON(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				mergeJSON(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// Update changes the resource limits of a created, running or paused
// container: r is merged into its current limits (fields r leaves unset
// keep their values), the result is applied to its cgroup and saved with
// its state. Device rules are not changed by an update, as with runc.
func (c *Container) Update(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st := c.Status(); st == StatusStopped || st == StatusCreating {
		return fmt.Errorf("container %s is %s: %w", c.st.ID, st, ErrNotRunning)
	}
	if len(c.st.CgroupPaths) == 0 || c.st.Spec == nil || c.st.Spec.Linux == nil {
		return fmt.Errorf("container %s has no cgroup to update", c.st.ID)
	}
	merged, err := mergeResources(c.st.Spec.Linux.Resources, r)
	if err != nil {
		return fmt.Errorf("update container %s: %w", c.st.ID, err)
	}
	apply := *merged
	apply.Devices = nil
	if err := cgroups.Load(c.st.CgroupPaths).Set(&apply); err != nil {
		return fmt.Errorf("update container %s: %w", c.st.ID, err)
	}
	merged.Devices = nil
	if c.st.Spec.Linux.Resources != nil {
		merged.Devices = c.st.Spec.Linux.Resources.Devices
	}
	c.st.Spec.Linux.Resources = merged
	return c.save()
}

// Stats returns the container's resource usage from its cgroup.
func (c *Container) Stats() (*cgroups.Stats, error) {
	if len(c.st.CgroupPaths) == 0 {
		return nil, fmt.Errorf("container %s has no cgroup", c.st.ID)
	}
	s, err := cgroups.Load(c.st.CgroupPaths).Stats()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.st.ID, err)
	}
	return s, nil
}

// OOMKilled reports whether the kernel's OOM killer has killed a process of
// the container. It holds after the container stopped, until Delete
// removes its cgroup; without a memory controller it is false.
func (c *Container) OOMKilled() (bool, error) {
	if len(c.st.CgroupPaths) == 0 {
		return false, nil
	}
	n, err := cgroups.Load(c.st.CgroupPaths).OOMKillCount()
	if errors.Is(err, cgroups.ErrNoMemoryController) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("container %s: %w", c.st.ID, err)
	}
	return n > 0, nil
}

// Event is one line of `events`: type "stats" with Data a *cgroups.Stats,
// or type "oom" when the OOM killer acted in the container.
type Event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

// Events reports the container's events to emit, as runc's `events` does:
// with stats, one "stats" event and return; otherwise "stats" every
// interval and "oom" as OOM kills happen, until ctx ends or the container
// stops (an OOM kill that stopped it is still reported).
func (c *Container) Events(ctx context.Context, interval time.Duration, stats bool, emit func(Event)) error {
	if st := c.Status(); st == StatusStopped {
		return fmt.Errorf("container %s is %s: %w", c.st.ID, st, ErrNotRunning)
	}
	if len(c.st.CgroupPaths) == 0 {
		return fmt.Errorf("container %s has no cgroup", c.st.ID)
	}
	cg := cgroups.Load(c.st.CgroupPaths)
	if stats {
		s, err := c.Stats()
		if err != nil {
			return err
		}
		emit(Event{Type: "stats", ID: c.st.ID, Data: s})
		return nil
	}
	if interval <= 0 {
		return fmt.Errorf("events: interval %v must be positive", interval)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	oom, err := cg.NotifyOOM(ctx)
	if err != nil && !errors.Is(err, cgroups.ErrNoMemoryController) {
		return fmt.Errorf("container %s: %w", c.st.ID, err)
	}
	reported, _ := cg.OOMKillCount()
	statsTick := time.NewTicker(interval)
	defer statsTick.Stop()
	aliveTick := time.NewTicker(50 * time.Millisecond)
	defer aliveTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-oom:
			if !ok {
				oom = nil
				continue
			}
			emit(Event{Type: "oom", ID: c.st.ID})
			// Count this event as a kill even if the counter lags it.
			reported++
			if n, err := cg.OOMKillCount(); err == nil && n > reported {
				reported = n
			}
		case <-statsTick.C:
			s, err := cg.Stats()
			if err != nil {
				Warn("container %s: %v", c.st.ID, err)
				continue
			}
			emit(Event{Type: "stats", ID: c.st.ID, Data: s})
		case <-aliveTick.C:
			if c.alive() {
				continue
			}
			// The last kill may have stopped the container before its
			// notification arrived: the counter tells.
			if n, err := cg.OOMKillCount(); err == nil && n > reported {
				emit(Event{Type: "oom", ID: c.st.ID})
			}
			return nil
		}
	}
}
