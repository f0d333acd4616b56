package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/engine/supervisor"
	"github.com/berth-project/berth/internal/atomicfile"
	"github.com/berth-project/berth/runtime"
	"github.com/berth-project/berth/storage/snapshot"
)

// Get finds a container by id, name or unique id prefix, with its state
// refreshed.
func (e *Engine) Get(ref string) (*Container, error) {
	var c *Container
	err := e.db.view(func(tx *bolt.Tx) error {
		id, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		c, err = getContainer(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.refresh(c)
	return c, nil
}

// List returns every container, states refreshed, newest first.
func (e *Engine) List() ([]*Container, error) {
	var out []*Container
	err := e.db.view(func(tx *bolt.Tx) error {
		var err error
		out, err = allContainers(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, c := range out {
		e.refresh(c)
		known[c.ID] = true
	}
	e.gcRunDirs(known)
	e.gcTempMounts()
	sortNewest(out)
	return out, nil
}

// modify applies fn to the stored record of id in one transaction.
func (e *Engine) modify(id string, fn func(c *Container) error) (*Container, error) {
	var c *Container
	err := e.db.update(func(tx *bolt.Tx) error {
		var err error
		if c, err = getContainer(tx, id); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		return putContainer(tx, c)
	})
	return c, err
}

// refresh makes c's state true: a container recorded as running whose
// processes are gone, with no supervisor left to report it (kill -9,
// reboot), becomes exited, and its leftovers are cleaned up.
func (e *Engine) refresh(c *Container) {
	if !c.State.Running() && c.State.Status != "starting" {
		return
	}
	if e.supervisorAlive(c.ID) {
		if c.State.Status == "running" || c.State.Status == "paused" {
			if rc, err := runtime.Load(e.runtimeRoot(), c.ID); err == nil && rc.Status() == runtime.StatusPaused {
				c.State.Status = "paused"
			} else if err == nil && rc.Status() == runtime.StatusRunning {
				c.State.Status = "running"
			}
		}
		return
	}
	if rc, err := runtime.Load(e.runtimeRoot(), c.ID); err == nil {
		switch rc.Status() {
		case runtime.StatusRunning, runtime.StatusPaused, runtime.StatusCreated:
			// Supervisor gone, container alive: still running, nobody
			// will record its exit code.
			if rc.Status() == runtime.StatusPaused {
				c.State.Status = "paused"
			}
			return
		}
	}
	// Nothing runs any more and nobody will clean up: do it now.
	unlock, err := e.lock(c.ID)
	if err != nil {
		return
	}
	defer unlock()
	cur, err := e.getRaw(c.ID)
	if err != nil || (!cur.State.Running() && cur.State.Status != "starting") {
		if err == nil {
			*c = *cur
		}
		return
	}
	code, at, ok := e.readExit(c.ID)
	if !ok {
		code, at = 255, time.Now().UTC()
	}
	e.cleanupLocked(cur, code, at, "")
	if n, err := e.getRaw(c.ID); err == nil {
		*c = *n
	} else {
		c.State.Status = "exited"
	}
}

func (e *Engine) getRaw(id string) (*Container, error) {
	var c *Container
	err := e.db.view(func(tx *bolt.Tx) error {
		var err error
		c, err = getContainer(tx, id)
		return err
	})
	return c, err
}

// lockedRecord takes id's lock and reads its record under it. The caller
// calls unlock; on error nothing is held.
func (e *Engine) lockedRecord(id string) (c *Container, unlock func(), err error) {
	unlock, err = e.lock(id)
	if err != nil {
		return nil, nil, err
	}
	c, err = e.getRaw(id)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return c, unlock, nil
}

// StartOptions are the options of Start.
type StartOptions struct {
	// WaitAttach holds the container until a client attached, so that a
	// foreground run loses no output.
	WaitAttach bool
	// SelfCleanup: the caller waits for the container's exit and calls
	// Reap itself (a foreground run), sparing the supervisor a cleanup
	// callback. If the caller dies first, the next command that looks at
	// the container cleans up (see refresh). Ignored with a restart
	// policy.
	SelfCleanup bool
}

// Start starts a created or exited container under a new supervisor and
// returns once its process runs (or failed to start). With WaitAttach it
// returns as soon as the supervisor waits for the attach.
//
// Without WaitAttach the container is created in this process (which has
// the container's state open already) rather than by the supervisor's
// start callback: only the init's process is started by the supervisor,
// whose child it must be (see supervisor.SpawnStarter).
func (e *Engine) Start(ctx context.Context, ref string, o StartOptions) (*Container, error) {
	c, _, err := e.start(ctx, ref, o, nil)
	return c, err
}

// StartAttach is Start with the caller attached to the container's stdio
// (its input too with stdin) before the container's program runs, so that
// none of its output is lost: a foreground run. The connection ends with
// the run (AttachConn.Copy).
func (e *Engine) StartAttach(ctx context.Context, ref string, stdin bool, o StartOptions) (*Container, *supervisor.AttachConn, error) {
	return e.start(ctx, ref, o, &stdin)
}

func (e *Engine) start(ctx context.Context, ref string, o StartOptions, attach *bool) (*Container, *supervisor.AttachConn, error) {
	c, err := e.startSupervised(ctx, ref, o, attach)
	if err != nil || attach == nil {
		if c == nil {
			return nil, nil, err
		}
		return c.Container, nil, err
	}
	if c.conn != nil {
		return c.Container, c.conn, nil
	}
	conn, err := e.Attach(c.Container, *attach)
	if err != nil {
		return nil, nil, err
	}
	return c.Container, conn, nil
}

// startedContainer is a started container, with the attach connection
// the fast path made.
type startedContainer struct {
	*Container
	conn *supervisor.AttachConn
}

func (e *Engine) startSupervised(ctx context.Context, ref string, o StartOptions, attach *bool) (*startedContainer, error) {
	wrap := func(c *Container, err error) (*startedContainer, error) {
		if c == nil {
			return nil, err
		}
		return &startedContainer{Container: c}, err
	}
	runtime.Trace("engine start: begin")
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	c, unlock, err := e.lockedRecord(c.ID)
	if err != nil {
		return nil, err
	}
	switch c.State.Status {
	case "running", "restarting", "starting":
		unlock()
		if c.State.Status == "running" {
			return wrap(c, nil) // docker start of a running container is a no-op
		}
		return nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrConflict)
	case "paused":
		unlock()
		return nil, fmt.Errorf("container %s is paused; unpause it instead: %w", c.Name, ErrConflict)
	case "removing", "dead":
		unlock()
		return nil, fmt.Errorf("container %s is %s: %w", c.Name, c.State.Status, ErrConflict)
	}
	if e.supervisorAlive(c.ID) {
		unlock()
		if c.State.Status != "created" {
			// The supervisor of the last run, exiting after it recorded
			// that run's end (a start that raced `stop`): wait for it to
			// go, then start afresh. (Another start of a used container
			// would have recorded "starting" first.)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := supervisor.Wait(wctx, e.runDir(c.ID))
			cancel()
			if err != nil {
				return nil, fmt.Errorf("container %s: the supervisor of its last run has not exited: %w", c.Name, err)
			}
			return e.startSupervised(ctx, ref, o, attach)
		}
		// Started by someone else a moment ago: it is starting.
		if o.WaitAttach {
			return wrap(c, nil)
		}
		return wrap(e.waitStarted(ctx, c.ID))
	}
	if c.State.Status != "created" || c.State.StoppedByUser || c.State.Error != "" || c.RestartCount != 0 {
		// A restart of a used container: reset what its last run left.
		// (A fresh one starts as it is: its callback records "running",
		// and a live supervisor tells meanwhile that it is starting.)
		c, err = e.modify(c.ID, func(c *Container) error {
			c.State.Status = "starting"
			c.State.StoppedByUser = false
			c.State.Error = ""
			c.RestartCount = 0
			return nil
		})
	}
	runtime.Trace("engine start: starting recorded")
	var st *supervisor.Starter
	selfCleanup := false
	if err == nil {
		rp := c.HostConfig.RestartPolicy.Name
		selfCleanup = o.SelfCleanup && (rp == "" || rp == "no")
		st, err = e.spawnSupervisor(c, o.WaitAttach, selfCleanup, !o.WaitAttach)
	}
	runtime.Trace("engine start: supervisor spawned")
	if err != nil {
		e.modify(c.ID, func(c *Container) error {
			c.State.Status = "exited"
			c.State.ExitCode = 125
			c.State.Error = err.Error()
			return nil
		})
		unlock()
		return nil, err
	}
	if st != nil {
		sc, err := e.startHere(ctx, c, st, attach)
		unlock()
		return sc, err
	}
	unlock()
	if o.WaitAttach {
		return wrap(c, nil)
	}
	return wrap(e.waitStarted(ctx, c.ID))
}

// startHere creates and starts c (locked, its supervisor just spawned
// with st) in this process; the supervisor starts the init's process.
// With attach, the caller is attached before the container's program
// runs. On failure the supervisor records it and exits; this waits for
// that and removes a --rm container.
func (e *Engine) startHere(ctx context.Context, c *Container, st *supervisor.Starter, attach *bool) (*startedContainer, error) {
	dir := e.runDir(c.ID)
	var conn *supervisor.AttachConn
	var err error
	if attach != nil {
		conn, err = supervisor.Attach(dir, *attach)
	}
	var pid int
	if err == nil {
		console := ""
		if c.Config.Tty {
			console = filepath.Join(dir, supervisor.ConsoleSocket)
		}
		pid, err = e.createAndStart(ctx, c, console, st)
	}
	if err != nil {
		e.startFailed(c, err)
		code := StartExitCode(err)
		if ferr := st.Failed(code, err.Error()); ferr != nil {
			runtime.Warn("tell the supervisor of %s: %v", c.ID, ferr)
		}
		if conn != nil {
			conn.Close()
		}
		// The supervisor records the failure and exits without a cleanup
		// callback: what the start set up is undone already; a --rm
		// container goes now.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		supervisor.Wait(wctx, dir)
		cancel()
		if cur, gerr := e.getRaw(c.ID); gerr == nil && cur.HostConfig.AutoRemove {
			if rerr := e.removeLocked(cur, true); rerr == nil {
				os.RemoveAll(dir)
			}
		}
		return nil, &StartError{Code: code, Msg: err.Error()}
	}
	// The record says running before the supervisor learns it: if this
	// process dies in between, the supervisor kills the init, and the
	// next command that looks finds a running record with nothing
	// running and cleans up (refresh).
	n, err := e.recordRunning(c, pid, false)
	if err != nil {
		// It runs, but the record does not say so: the supervisor kills
		// it (a failed start).
		st.Failed(125, err.Error())
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	c = n
	if err := st.Started(pid); err != nil {
		// The container runs; nobody will record its exit (refresh
		// notices that the supervisor is gone).
		runtime.Warn("tell the supervisor of %s it runs: %v", c.ID, err)
	}
	runtime.Trace("engine start: started here")
	return &startedContainer{Container: c, conn: conn}, nil
}

// waitStarted waits until the supervisor's start callback finished.
func (e *Engine) waitStarted(ctx context.Context, id string) (*Container, error) {
	for delay := 200 * time.Microsecond; ; delay = min(delay*2, 20*time.Millisecond) {
		c, err := e.getRaw(id)
		if err != nil {
			return nil, err
		}
		switch c.State.Status {
		case "starting", "created":
			if !e.supervisorAlive(id) {
				e.refresh(c)
				if c.State.Status == "created" {
					// The supervisor ended without a start: its exit record
					// says why.
					if ex, ok, _ := supervisor.ReadExit(e.runDir(id)); ok && ex.StartFailed {
						return c, &StartError{Code: ex.Code, Msg: strings.TrimSpace(ex.Error)}
					}
				}
				return c, startError(c)
			}
		case "exited", "dead":
			return c, startError(c)
		default:
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// StartError is a container that failed to start, with the exit code
// Docker uses for it (125, 126 or 127).
type StartError struct {
	Code int
	Msg  string
}

func (e *StartError) Error() string { return e.Msg }

func startError(c *Container) error {
	if c.State.Error == "" {
		return nil // it started and exited already
	}
	return &StartError{Code: c.State.ExitCode, Msg: c.State.Error}
}

// StartCallback runs in `berth __start ID`, called by the supervisor with
// the container's stdio as fds 0-2: it mounts the root filesystem, builds
// the spec and creates and starts the container's init, whose pid it
// writes to pidFile.
func (e *Engine) StartCallback(ctx context.Context, id, consoleSocket, pidFile string) error {
	runtime.Trace("start callback: begin")
	c, unlock, err := e.lockedRecord(id)
	if err != nil {
		return err
	}
	defer unlock()
	runtime.Trace("start callback: record read")
	restart := c.State.Status == "exited" || c.State.Status == "restarting"
	pid, err := e.createAndStart(ctx, c, consoleSocket, nil)
	if err != nil {
		e.startFailed(c, err)
		return err
	}
	if err := atomicfile.WriteFile(pidFile, []byte(fmt.Sprint(pid)), 0o644, false); err != nil {
		e.startFailed(c, err)
		return err
	}
	_, err = e.recordRunning(c, pid, restart)
	return err
}

// startFailed undoes what createAndStart set up for c and records the
// failure.
func (e *Engine) startFailed(c *Container, err error) {
	e.teardownNetwork(c)
	e.unmountRootfs(c.ID)
	e.modify(c.ID, func(c *Container) error {
		c.State.Status, c.State.Error, c.State.ExitCode = "exited", err.Error(), StartExitCode(err)
		c.State.FinishedAt = time.Now().UTC()
		return nil
	})
}

// recordRunning records that c runs with init pid.
func (e *Engine) recordRunning(c *Container, pid int, restart bool) (*Container, error) {
	network := c.Network
	n, err := e.modify(c.ID, func(c *Container) error {
		c.Network = network
		c.State.Status = "running"
		c.State.Pid = pid
		c.State.StartedAt = time.Now().UTC()
		c.State.ExitCode, c.State.Error, c.State.OOMKilled = 0, "", false
		if restart {
			c.RestartCount++
		}
		return nil
	})
	if err == nil {
		e.event("container", "start", n, nil)
	}
	return n, err
}

// createAndStart mounts c's root filesystem, sets up its network, builds
// its spec and creates and starts it (c is locked), returning its init's
// pid. With st, the init's process is started by the supervisor (see
// supervisor.Starter). On error the caller calls startFailed.
func (e *Engine) createAndStart(ctx context.Context, c *Container, consoleSocket string, st *supervisor.Starter) (int, error) {
	id := c.ID
	if old, err := runtime.Load(e.runtimeRoot(), id); err == nil {
		old.Delete(true)
	}
	rootfs := e.rootfsDir(id)
	// The network namespace and the root filesystem are independent: set
	// them up at once.
	type netResult struct {
		ns  string
		err error
	}
	netDone := make(chan netResult, 1)
	go func() {
		ns, err := e.setupNetwork(ctx, c)
		runtime.Trace("start: network set up")
		netDone <- netResult{ns, err}
	}()
	mountErr := e.mountRootfs(c)
	runtime.Trace("start: rootfs mounted")
	nr := <-netDone
	if mountErr != nil {
		return 0, mountErr
	}
	if nr.err != nil {
		return 0, nr.err
	}
	spec, err := e.specFor(c, rootfs, nr.ns)
	if err != nil {
		return 0, err
	}
	if err := e.netSysctls(c, nr.ns); err != nil {
		return 0, err
	}
	runtime.Trace("start: spec built")
	opts := &runtime.CreateOpts{Bundle: e.bundleDir(id), Spec: spec, ConsoleSocket: consoleSocket}
	stagePid := 0
	if st != nil {
		opts.Starter = func(p *runtime.InitProcess) (int, error) {
			pid, err := st.Exec(supervisor.ExecRequest{Exe: p.Exe, Args: p.Args, Env: p.Env, Files: p.Files, Cloneflags: p.Cloneflags})
			stagePid = pid
			return pid, err
		}
	}
	rc, err := runtime.Create(e.runtimeRoot(), id, opts)
	if err != nil {
		return 0, err
	}
	if st != nil && rc.Pid() != stagePid {
		// An intermediate process forked the init: the supervisor
		// must know it to kill it if this process dies now.
		if err := st.InitPid(rc.Pid()); err != nil {
			rc.Delete(true)
			return 0, err
		}
	}
	if err := rc.Start(); err != nil {
		rc.Delete(true)
		return 0, err
	}
	runtime.Trace("start: started")
	return rc.Pid(), nil
}

// StartExitCode is the code `docker run` exits with when the container
// could not start: 127 for a missing program, 126 for one that cannot be
// run, 125 for the rest.
func StartExitCode(err error) int {
	s := err.Error()
	switch {
	case strings.Contains(s, "executable file not found") || strings.Contains(s, "no such file or directory") && strings.Contains(s, "exec"):
		return 127
	case strings.Contains(s, "permission denied") && strings.Contains(s, "exec"):
		return 126
	}
	return 125
}

// specFor builds the spec of c, whose root filesystem is mounted at rootfs.
func (e *Engine) specFor(c *Container, rootfs, netns string) (*specsSpec, error) {
	usr, err := resolveUser(rootfs, c.Config.User, c.HostConfig.GroupAdd)
	if err != nil {
		return nil, err
	}
	// The rootfs shows a remapped container's files with host IDs.
	wu, wg, err := c.IDMap.ToHost(int(usr.UID), int(usr.GID))
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", c.Config.User, err)
	}
	if err := ensureWorkdir(c, rootfs, c.Config.WorkingDir, uint32(wu), uint32(wg)); err != nil {
		return nil, err
	}
	nsPaths, hostNS, err := e.specNamespaces(c)
	if err != nil {
		return nil, err
	}
	if netns == "" {
		hostNS[specs.NetworkNamespace] = true
	} else {
		nsPaths[specs.NetworkNamespace] = netns
	}
	in := &specInput{
		Rootfs: rootfs, NSPaths: nsPaths, HostNS: hostNS, User: usr, Mounts: c.Mounts,
		CgroupNSPrivate: cgroupNSPrivate(c.HostConfig),
	}
	if err := e.writeEtcFiles(c, in); err != nil {
		return nil, err
	}
	if err := e.populateVolumes(c, rootfs); err != nil {
		return nil, err
	}
	if c.HostConfig.Init != nil && *c.HostConfig.Init {
		in.InitPath = e.cfg.BerthPath
	}
	return buildSpec(c, in)
}

// mountRootfs mounts the container's snapshot at its bundle's rootfs.
func (e *Engine) mountRootfs(c *Container) error {
	target := e.rootfsDir(c.ID)
	e.unmountRootfs(c.ID)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	mounts, err := e.snap.Mounts(c.Snapshot)
	if err != nil {
		return fmt.Errorf("root filesystem of %s: %w", c.Name, err)
	}
	mount := snapshot.MountAll
	if c.IDMap != nil {
		// The init reaches its root by path once in the user namespace:
		// the directories above it let the container's root through
		// (search only, as Docker does for its remapped root).
		uid, gid := c.hostRoot()
		if err := checkSearchable(c.HostConfig.UsernsMode, e.cfg.RunDir, uid, gid); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Dir(e.runDir(c.ID)), 0o711); err != nil {
			return err
		}
		for _, d := range []string{e.runDir(c.ID), e.bundleDir(c.ID)} {
			if err := os.Lchown(d, 0, gid); err != nil {
				return err
			}
			if err := os.Chmod(d, 0o710); err != nil {
				return err
			}
		}
		mount = func(mounts []snapshot.Mount, target string) error {
			return snapshot.MountAllIDMapped(mounts, target, c.IDMap.UIDs, c.IDMap.GIDs)
		}
	}
	if err := mount(mounts, target); err != nil {
		return fmt.Errorf("mount root filesystem of %s: %w", c.Name, err)
	}
	return nil
}

// unmountRootfs detaches everything mounted at or under the container's
// rootfs mount point.
func (e *Engine) unmountRootfs(id string) {
	target := e.rootfsDir(id)
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(target))
	if err != nil {
		return
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i].Mountpoint, unix.MNT_DETACH)
	}
}

// CleanupCallback runs in `berth __cleanup ID CODE`, called by the
// supervisor after the container's init exited with code.
func (e *Engine) CleanupCallback(ctx context.Context, id string, code int) error {
	runtime.Trace("cleanup callback: begin")
	defer runtime.Trace("cleanup callback: done")
	c, unlock, err := e.lockedRecord(id)
	if err != nil {
		return err
	}
	defer unlock()
	_, at, ok := e.readExit(id)
	if !ok {
		at = time.Now().UTC()
	}
	return e.cleanupLocked(c, code, at, "")
}

// cleanupLocked tears down what a stopped container held and records its
// exit; with --rm it removes the container.
func (e *Engine) cleanupLocked(c *Container, code int, at time.Time, errMsg string) error {
	oom := false
	runtime.Trace("cleanup: locked")
	// The runtime state and cgroups, the root filesystem mount and the
	// network namespace are independent: release them at once.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.unmountRootfs(c.ID)
		runtime.Trace("cleanup: unmounted")
	}()
	go func() {
		defer wg.Done()
		e.teardownNetwork(c)
		runtime.Trace("cleanup: network down")
	}()
	if rc, err := runtime.Load(e.runtimeRoot(), c.ID); err == nil {
		oom, _ = rc.OOMKilled()
		if err := rc.Delete(true); err != nil {
			runtime.Warn("delete runtime state of %s: %v", c.ID, err)
		}
	}
	runtime.Trace("cleanup: runtime deleted")
	wg.Wait()
	if c.HostConfig.AutoRemove {
		return e.removeCleaned(c, true)
	}
	c, err := e.modify(c.ID, func(c *Container) error {
		if c.State.Error == "" || code != 0 {
			c.State.ExitCode = code
		}
		c.State.Status = "exited"
		c.State.Pid = 0
		c.State.OOMKilled = oom
		c.State.FinishedAt = at
		if c.Network != nil {
			c.Network.Networks, c.Network.Ports = nil, nil
		}
		if errMsg != "" {
			c.State.Error = errMsg
		}
		if c.State.Health != nil {
			c.State.Health.Status = container.Unhealthy
		}
		return nil
	})
	if err == nil {
		e.event("container", "die", c, map[string]string{"exitCode": fmt.Sprint(code)})
	}
	return err
}

// removeLocked deletes a stopped container: record, root filesystem,
// files, anonymous volumes (with volumes).
func (e *Engine) removeLocked(c *Container, volumes bool) error {
	if _, err := e.modify(c.ID, func(c *Container) error {
		c.State.Status = "removing"
		return nil
	}); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if rc, err := runtime.Load(e.runtimeRoot(), c.ID); err == nil {
		rc.Delete(true)
	}
	e.unmountRootfs(c.ID)
	e.teardownNetwork(c)
	return e.removeCleaned(c, volumes)
}

// removeCleaned removes a container whose processes, mounts and network
// are already gone (cleanupLocked of a --rm container): snapshot, record,
// files, and its anonymous volumes with volumes. A kill -9 between its
// steps leaves a record whose snapshot may be gone; rm finishes it.
func (e *Engine) removeCleaned(c *Container, volumes bool) error {
	runtime.Trace("remove: begin")
	// The container's files (logs, /etc files, run directory) go while
	// the snapshot and the record are removed, in that order (a kill -9
	// in between leaves a record whose rm finishes the job, never a
	// snapshot nobody knows).
	filesDone := make(chan struct{})
	go func() {
		defer close(filesDone)
		os.RemoveAll(e.ctrDir(c.ID))
		e.removeRunDir(c.ID)
		runtime.Trace("remove: files removed")
	}()
	defer func() { <-filesDone }()
	if err := e.snap.Remove(c.Snapshot); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		return fmt.Errorf("remove root filesystem of %s: %w", c.Name, err)
	}
	runtime.Trace("remove: snapshot removed")
	if err := e.db.update(func(tx *bolt.Tx) error {
		if id := tx.Bucket(bucketNames).Get([]byte(c.Name)); string(id) == c.ID {
			tx.Bucket(bucketNames).Delete([]byte(c.Name))
		}
		return tx.Bucket(bucketContainers).Delete([]byte(c.ID))
	}); err != nil {
		return err
	}
	runtime.Trace("remove: record deleted")
	if volumes {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Anonymous {
				e.VolumeRemove(m.Name, true)
			}
		}
	}
	e.event("container", "destroy", c, nil)
	return nil
}

// removeRunDir removes the run-time directory of a removed container but
// its supervisor's exit record, which a foreground `run --rm` still reads
// (ExitOf removes the rest); gcRunDirs removes those left by a client that
// died.
func (e *Engine) removeRunDir(id string) {
	dir := e.runDir(id)
	os.Remove(e.lockPath(id))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		if ent.Name() != "exit" {
			os.RemoveAll(filepath.Join(dir, ent.Name()))
		}
	}
}

// gcRunDirs removes run-time directories of containers that no longer
// exist and whose supervisor is gone.
func (e *Engine) gcRunDirs(known map[string]bool) {
	ents, err := os.ReadDir(filepath.Join(e.cfg.RunDir, "containers"))
	if err != nil {
		return
	}
	for _, ent := range ents {
		id := ent.Name()
		if known[id] || !validContainerID(id) || e.supervisorAlive(id) {
			continue
		}
		if fi, err := ent.Info(); err == nil && time.Since(fi.ModTime()) < time.Minute {
			continue // a foreground run may still read its exit record
		}
		os.RemoveAll(e.runDir(id))
	}
}

func validContainerID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Reap records the exit of a container started with SelfCleanup, once its
// supervisor is gone, and cleans up what it held (removing it with --rm).
// A container someone else already cleaned up is left as it is.
func (e *Engine) Reap(ctx context.Context, id string) error {
	c, unlock, err := e.lockedRecord(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	if !c.State.Running() && c.State.Status != "starting" {
		if c.HostConfig.AutoRemove {
			return e.removeLocked(c, true)
		}
		return nil
	}
	code, at, ok := e.readExit(id)
	if !ok {
		code, at = 255, time.Now().UTC()
	}
	return e.cleanupLocked(c, code, at, "")
}
