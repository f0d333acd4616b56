package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime"
	"github.com/berth-project/berth/runtime/cgroups"
)

type specsSpec = specs.Spec

type runtimeStats = cgroups.Stats

func sortNewest(cs []*Container) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Created.After(cs[j].Created) })
}

// ParseSignal parses a signal name (KILL, SIGKILL) or number; "" is
// SIGTERM.
func ParseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	sig, err := runtime.ParseSignal(s)
	if err != nil {
		return 0, fmt.Errorf("invalid signal %q", s)
	}
	return sig, nil
}

func (e *Engine) runtimeContainer(c *Container) (*runtime.Container, error) {
	rc, err := runtime.Load(e.runtimeRoot(), c.ID)
	if err != nil {
		return nil, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	return rc, nil
}

// Kill sends sig to the container's init.
func (e *Engine) Kill(ctx context.Context, ref string, sig unix.Signal) (*Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if !c.State.Running() {
		return nil, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	if sig == unix.SIGKILL || sig == unix.SIGTERM {
		// An explicit kill stops restarts as a stop does? Docker: kill
		// keeps the policy (always restarts), so only mark nothing.
	}
	rc, err := e.runtimeContainer(c)
	if err != nil {
		return nil, err
	}
	if err := rc.Signal(sig, false); err != nil {
		return nil, fmt.Errorf("kill %s: %w", c.Name, err)
	}
	e.event("container", "kill", c, map[string]string{"signal": strconv.Itoa(int(sig))})
	return c, nil
}

// Stop sends the stop signal (--signal, the container's StopSignal, or
// SIGTERM), waits timeout (--time, the container's StopTimeout, or 10 s),
// then kills with SIGKILL; it returns once the container was cleaned up.
// A stopped container is not restarted by its policy.
func (e *Engine) Stop(ctx context.Context, ref string, timeout *int, signal string) (*Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if _, err := e.modify(c.ID, func(c *Container) error { c.State.StoppedByUser = true; return nil }); err != nil {
		return nil, err
	}
	e.stopRequested(c.ID)
	if !c.State.Running() && c.State.Status != "starting" {
		return c, nil
	}
	if signal == "" {
		signal = c.Config.StopSignal
	}
	sig, err := ParseSignal(signal)
	if err != nil {
		return nil, err
	}
	t := 10
	if c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	rc, err := runtime.Load(e.runtimeRoot(), c.ID)
	if err == nil {
		if rc.Status() == runtime.StatusPaused {
			rc.Resume()
		}
		if t != 0 {
			rc.Signal(sig, false)
		}
		deadline := time.Now().Add(time.Duration(t) * time.Second)
		if t < 0 {
			deadline = time.Now().Add(100 * 365 * 24 * time.Hour)
		}
		if !waitInitGone(ctx, rc, deadline) {
			rc.Signal(unix.SIGKILL, true)
			waitInitGone(ctx, rc, time.Now().Add(10*time.Second))
		}
	}
	c, err = e.waitCleaned(ctx, c.ID, 30*time.Second)
	if err == nil && c != nil {
		e.event("container", "stop", c, nil)
	}
	return c, err
}

// waitInitGone polls until the init process is gone or the deadline.
func waitInitGone(ctx context.Context, rc *runtime.Container, deadline time.Time) bool {
	pid := rc.Pid()
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(fd)
		for {
			ms := int(time.Until(deadline) / time.Millisecond)
			if ms <= 0 {
				return rc.Status() == runtime.StatusStopped
			}
			ms = min(ms, 100)
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(fds, ms)
			if n > 0 || ctx.Err() != nil {
				return n > 0
			}
		}
	}
	for time.Now().Before(deadline) {
		if rc.Status() == runtime.StatusStopped {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// waitCleaned waits until the container's exit was recorded (or it was
// removed, returning nil).
func (e *Engine) waitCleaned(ctx context.Context, id string, d time.Duration) (*Container, error) {
	deadline := time.Now().Add(d)
	for delay := time.Millisecond; ; delay = min(delay*2, 25*time.Millisecond) {
		c, err := e.getRaw(id)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !c.State.Running() && c.State.Status != "starting" {
			return c, nil
		}
		e.refresh(c)
		if !c.State.Running() && c.State.Status != "starting" {
			return c, nil
		}
		if time.Now().After(deadline) {
			return c, fmt.Errorf("container %s did not stop in %s", c.Name, d)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Wait blocks until the container is not running and returns its exit
// code (condition "not-running"; "next-exit" waits for an exit first;
// "removed" until it is gone).
func (e *Engine) Wait(ctx context.Context, ref string, condition string) (int, error) {
	c, err := e.Get(ref)
	if err != nil {
		return -1, err
	}
	startedAt := c.State.StartedAt
	for delay := time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		cur, err := e.getRaw(c.ID)
		if errors.Is(err, ErrNotFound) {
			return c.State.ExitCode, nil
		}
		if err != nil {
			return -1, err
		}
		e.refresh(cur)
		c = cur
		done := !cur.State.Running() && cur.State.Status != "starting"
		if condition == "next-exit" {
			done = done && cur.State.FinishedAt.After(startedAt)
		}
		if done && condition != "removed" {
			return cur.State.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Remove deletes a container; force kills a running one first; volumes
// also removes its anonymous volumes.
func (e *Engine) Remove(ctx context.Context, ref string, force, volumes bool) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if c.State.Running() || c.State.Status == "starting" {
		if !force {
			return fmt.Errorf("cannot remove container %s: container is %s: stop the container before removing or force remove: %w", c.Name, c.State.Status, ErrConflict)
		}
		e.modify(c.ID, func(c *Container) error { c.State.StoppedByUser = true; return nil })
		e.stopRequested(c.ID)
		if rc, err := runtime.Load(e.runtimeRoot(), c.ID); err == nil {
			rc.Signal(unix.SIGKILL, true)
			waitInitGone(ctx, rc, time.Now().Add(10*time.Second))
		}
		e.killSupervisor(c.ID)
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	c, err = e.getRaw(c.ID)
	if errors.Is(err, ErrNotFound) {
		return nil // removed meanwhile (--rm)
	}
	if err != nil {
		return err
	}
	return e.removeLocked(c, volumes)
}

// Pause freezes the container's processes.
func (e *Engine) Pause(ref string) (*Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if c.State.Status != "running" {
		return nil, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	rc, err := e.runtimeContainer(c)
	if err != nil {
		return nil, err
	}
	if err := rc.Pause(); err != nil {
		return nil, err
	}
	c, err = e.modify(c.ID, func(c *Container) error { c.State.Status = "paused"; return nil })
	e.event("container", "pause", c, nil)
	return c, err
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(ref string) (*Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if c.State.Status != "paused" {
		return nil, fmt.Errorf("container %s is not paused: %w", c.Name, ErrConflict)
	}
	rc, err := e.runtimeContainer(c)
	if err != nil {
		return nil, err
	}
	if err := rc.Resume(); err != nil {
		return nil, err
	}
	c, err = e.modify(c.ID, func(c *Container) error { c.State.Status = "running"; return nil })
	e.event("container", "unpause", c, nil)
	return c, err
}

// Restart stops (if running) and starts a container.
func (e *Engine) Restart(ctx context.Context, ref string, timeout *int, signal string) (*Container, error) {
	c, err := e.Stop(ctx, ref, timeout, signal)
	if err != nil {
		return nil, err
	}
	c, err = e.Start(ctx, c.ID, StartOptions{})
	if err == nil {
		e.event("container", "restart", c, nil)
	}
	return c, err
}

// Rename changes a container's name.
func (e *Engine) Rename(ref, name string) error {
	name = strings.TrimPrefix(name, "/")
	if err := ValidateName(name); err != nil {
		return err
	}
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if c.Name == name {
		return fmt.Errorf("renaming a container with the same name as its current name: %w", ErrConflict)
	}
	return e.db.update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if id := names.Get([]byte(name)); id != nil {
			return fmt.Errorf("the container name %q is already in use by container %s: %w", name, ShortID(string(id)), ErrConflict)
		}
		cur, err := getContainer(tx, c.ID)
		if err != nil {
			return err
		}
		names.Delete([]byte(cur.Name))
		cur.Name = name
		if err := names.Put([]byte(name), []byte(cur.ID)); err != nil {
			return err
		}
		return putContainer(tx, cur)
	})
}

// Update changes the resources (and restart policy) of a container,
// applying them to a running one at once.
func (e *Engine) Update(ctx context.Context, ref string, u *container.UpdateConfig) (*Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	next := *c.HostConfig
	mergeResources(&next.Resources, &u.Resources)
	if u.RestartPolicy.Name != "" {
		next.RestartPolicy = u.RestartPolicy
	}
	if err := validateHostConfig(&next); err != nil {
		return nil, err
	}
	res, err := resources(&next)
	if err != nil {
		return nil, err
	}
	if c.State.Running() {
		rc, err := e.runtimeContainer(c)
		if err != nil {
			return nil, err
		}
		if err := rc.Update(res); err != nil {
			return nil, fmt.Errorf("update %s: %w", c.Name, err)
		}
	}
	c, err = e.modify(c.ID, func(c *Container) error { c.HostConfig = &next; return nil })
	if err == nil {
		e.event("container", "update", c, nil)
	}
	return c, err
}

func mergeResources(dst, src *container.Resources) {
	if src.Memory != 0 {
		dst.Memory = src.Memory
	}
	if src.MemorySwap != 0 {
		dst.MemorySwap = src.MemorySwap
	}
	if src.MemoryReservation != 0 {
		dst.MemoryReservation = src.MemoryReservation
	}
	if src.NanoCPUs != 0 {
		dst.NanoCPUs = src.NanoCPUs
	}
	if src.CPUShares != 0 {
		dst.CPUShares = src.CPUShares
	}
	if src.CPUQuota != 0 {
		dst.CPUQuota = src.CPUQuota
	}
	if src.CPUPeriod != 0 {
		dst.CPUPeriod = src.CPUPeriod
	}
	if src.CpusetCpus != "" {
		dst.CpusetCpus = src.CpusetCpus
	}
	if src.CpusetMems != "" {
		dst.CpusetMems = src.CpusetMems
	}
	if src.PidsLimit != nil {
		dst.PidsLimit = src.PidsLimit
	}
	if src.BlkioWeight != 0 {
		dst.BlkioWeight = src.BlkioWeight
	}
}

// Processes lists the host pids of the container's processes.
func (e *Engine) Processes(ref string) (*Container, []int, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	if !c.State.Running() {
		return nil, nil, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	rc, err := e.runtimeContainer(c)
	if err != nil {
		return nil, nil, err
	}
	pids, err := rc.Processes()
	return c, pids, err
}

// Stats reads the container's cgroup statistics.
func (e *Engine) Stats(ref string) (*Container, *runtimeStats, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	if !c.State.Running() {
		return c, nil, nil
	}
	rc, err := e.runtimeContainer(c)
	if err != nil {
		return c, nil, nil
	}
	st, err := rc.Stats()
	return c, st, err
}

// Restore starts, after a reboot (or anything else that ended containers
// behind berth's back), every container whose restart policy says it
// should run: always, and unless-stopped unless a user stopped it. It is
// what a host runs at boot (`berth system restore`, from a systemd unit).
func (e *Engine) Restore(ctx context.Context) (started []*Container, errs []error) {
	cs, err := e.List()
	if err != nil {
		return nil, []error{err}
	}
	for _, c := range cs {
		rp := c.HostConfig.RestartPolicy.Name
		if c.State.Running() || c.State.Status == "starting" || c.State.Status == "removing" {
			continue
		}
		if rp != container.RestartPolicyAlways && !(rp == container.RestartPolicyUnlessStopped && !c.State.StoppedByUser) {
			continue
		}
		if c.State.Status == "created" {
			continue // never started: nothing to bring back
		}
		if _, err := e.Start(ctx, c.ID, StartOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", c.Name, err))
			continue
		}
		started = append(started, c)
	}
	if m, err := e.Network(); err == nil {
		if err := m.Reconcile(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return started, errs
}
