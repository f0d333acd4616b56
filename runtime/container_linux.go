package runtime

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/cgroups"
	"github.com/berth-project/berth/runtime/hooks"
	"github.com/berth-project/berth/runtime/rootfs"
	"github.com/berth-project/berth/runtime/seccomp"
)

// CreateOpts are the options of Create.
type CreateOpts struct {
	Bundle        string      // bundle directory (absolute)
	Spec          *specs.Spec // the bundle's config
	ConsoleSocket string      // unix socket that receives the pty master when process.terminal
	NoPivot       bool
	NoNewKeyring  bool
	PreserveFds   int         // fds 3 .. 3+N-1 of the caller pass to the container
	Stdio         [3]*os.File // nil: the caller's own
	// Starter, when set, starts the init process in place of Create's
	// own fork and exec (Stdio is then the starter's business): an
	// engine's per-container supervisor uses it to be the init's parent
	// while Create runs in another process. Create cannot wait for a
	// process it did not fork: an init that fails is reaped by the
	// starter's side, which must also kill it if this process dies.
	Starter func(*InitProcess) (pid int, err error)
}

// InitProcess is the process a Starter starts: Exe (a read-only handle on
// the runtime's binary, to execute through the descriptor, e.g. with
// execveat(2) and AT_EMPTY_PATH) with Args and Env, Files as its
// descriptors 3, 4, ..., cloned with Cloneflags (namespaces to create; 0
// for a plain fork). Its descriptors 0-2 are the container's stdio.
type InitProcess struct {
	Exe        *os.File
	Args, Env  []string
	Files      []*os.File
	Cloneflags uintptr
}

// Warn receives non-fatal problems (failed poststart/poststop hooks, ...).
// The CLI points it at its log.
var Warn = func(format string, a ...any) {}

func stdio(s [3]*os.File) [3]*os.File {
	def := [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	for i := range s {
		if s[i] == nil {
			s[i] = def[i]
		}
	}
	return s
}

// Create makes the container: its namespaces, root filesystem and cgroup,
// with an init process that waits for Start. On error nothing is left
// behind: no state directory, cgroup or process.
func Create(root, id string, o *CreateOpts) (_ *Container, retErr error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	spec := o.Spec
	tracef("create: start")
	rootfsPath, err := Validate(spec, o.Bundle)
	if err != nil {
		return nil, err
	}
	prog, filter, err := compileSeccompProgram(spec)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("create state root: %w", err)
	}
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	c := &Container{root: root, dir: dir, st: saved{
		ID: id, Bundle: o.Bundle, Rootfs: rootfsPath, Created: time.Now().UTC(),
		Phase: StatusCreating, NoPivot: o.NoPivot, Spec: spec,
	}}
	var cg *cgroups.Manager
	defer func() {
		if retErr != nil {
			if c.st.Pid > 0 && o.Starter == nil {
				unix.Kill(c.st.Pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(c.st.Pid, &ws, 0, nil)
			} else if c.st.Pid > 0 {
				// Not our child: its parent reaps it, so the pid may be
				// another process's by now unless its start time matches.
				if st, zombie, ok := procStart(c.st.Pid); ok && !zombie && st == c.st.PidStart {
					unix.Kill(c.st.Pid, unix.SIGKILL)
				}
			}
			if cg != nil {
				killCgroup(cg)
				cg.Destroy()
				removeSharedParents(cg.Paths())
			}
			if !hasNS(spec, specs.MountNamespace) && rootfsPath != "" {
				unmountUnder(rootfsPath)
			}
			os.RemoveAll(dir)
		}
	}()
	cgPath := spec.Linux.CgroupsPath
	if cgPath == "" {
		cgPath = "/berth/" + id
	}
	if cg, err = cgroups.New(cgPath); err != nil {
		return nil, fmt.Errorf("linux.cgroupsPath: %w", err)
	}
	c.st.CgroupPaths = cg.Paths()
	// The first state write (it records the cgroup paths, so that delete
	// can clean up after a create that was killed), making the cgroup
	// directories and writing the limits take a millisecond or two of
	// file system work: do them, in this order, while the init starts;
	// spawn waits for them before the init joins the cgroup, and so
	// before this function touches c.st again. A create killed before
	// the state is written leaves a directory without state, which
	// delete removes; the init then exits when its socket closes.
	cgReady := make(chan error, 1)
	go func() {
		if u, err := user.Current(); err == nil {
			c.st.Owner = u.Username
		}
		tracef("create: owner known")
		if err := c.save(); err != nil {
			cgReady <- err
			return
		}
		tracef("create: state saved")
		if err := cg.Create(); err != nil {
			cgReady <- err
			return
		}
		cgReady <- applyResources(cg, spec)
	}()
	cgDone := false
	waitCgroup := func() error {
		if cgDone {
			return nil
		}
		cgDone = true
		return <-cgReady
	}
	defer waitCgroup() // never leave the goroutine writing after cleanup
	tracef("create: cgroup dirs made")

	fifoPath := filepath.Join(dir, fifoName)
	if err := unix.Mkfifo(fifoPath, 0o600); err != nil {
		return nil, fmt.Errorf("create exec fifo: %w", err)
	}
	// The init keeps the fifo open for reading (so it never blocks on
	// open); start writes one byte into it.
	fifo, err := os.OpenFile(fifoPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open exec fifo: %w", err)
	}
	defer fifo.Close()

	cfg := &initConfig{
		ID: id, Spec: spec, Rootfs: rootfsPath, // the init takes Process from Spec
		NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring,
		NewMountNS:  hasNewNS(spec, specs.MountNamespace),
		NoMountNS:   !hasNS(spec, specs.MountNamespace),
		UserNS:      hasNS(spec, specs.UserNamespace),
		CgroupNS:    hasNewNS(spec, specs.CgroupNamespace),
		CgroupPaths: cg.Paths(), PreserveFds: o.PreserveFds,
		State:     specs.State{Version: specs.Version, ID: id, Status: specs.StateCreating, Bundle: o.Bundle, Annotations: spec.Annotations},
		ConsoleFd: -1,
		Seccomp:   filter,
	}
	if spec.Hooks != nil && (len(spec.Hooks.Prestart) > 0 || len(spec.Hooks.CreateRuntime) > 0) { //nolint:staticcheck // prestart is deprecated, still honoured
		cfg.RuntimeHooks = true
	}
	req := &spawnRequest{cgroup: cg, cgroupReady: waitCgroup, stdio: stdio(o.Stdio), config: cfg, starter: o.Starter}
	for i := 0; i < o.PreserveFds; i++ {
		req.files = append(req.files, os.NewFile(uintptr(3+i), "preserved-"+strconv.Itoa(3+i)))
	}
	req.files = append(req.files, fifo)
	cfg.FifoFd = 3 + len(req.files) - 1
	if o.ConsoleSocket != "" {
		f, err := dialConsole(o.ConsoleSocket)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		req.files = append(req.files, f)
		cfg.ConsoleFd = 3 + len(req.files) - 1
	}
	if hasNewNS(spec, specs.UserNamespace) && hasNewNS(spec, specs.MountNamespace) {
		srcs, err := openBindSources(spec, o.Bundle)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, f := range srcs {
				f.Close()
			}
		}()
		cfg.SourceFds = map[int]int{}
		for i, f := range srcs {
			req.files = append(req.files, f)
			cfg.SourceFds[i] = 3 + len(req.files) - 1
		}
	}
	for _, ns := range spec.Linux.Namespaces {
		f := nsFlags[ns.Type].flag
		if ns.Path != "" {
			req.joins = append(req.joins, nsJoin{f, ns.Path})
		} else {
			req.clone |= f
		}
	}
	req.uidMaps, req.gidMaps = spec.Linux.UIDMappings, spec.Linux.GIDMappings
	clocks := make([]string, 0, 2)
	for clock := range spec.Linux.TimeOffsets {
		clocks = append(clocks, clock)
	}
	sort.Strings(clocks)
	for _, clock := range clocks {
		off := spec.Linux.TimeOffsets[clock]
		req.timens = append(req.timens, fmt.Sprintf("%s %d %d", clock, off.Secs, off.Nanosecs))
	}

	if req.plan, err = cinitPlan(cfg, req, prog); err != nil {
		return nil, err
	}
	tracef("create: plan made (C init: %v)", req.plan != nil)
	sp, err := spawn(req)
	if err != nil {
		return nil, err
	}
	tracef("create: spawned, in cgroup")
	defer sp.sock.Close()
	// The pid is saved with the "created" phase below: until then a
	// killed create leaves the init in the recorded cgroup, where delete
	// finds and kills it.
	c.st.Pid = sp.pid
	c.st.PidStart, _, _ = procStart(sp.pid)
	for ready := false; !ready; {
		typ, payload, err := readMsg(sp.sock)
		if err != nil {
			return nil, fmt.Errorf("container init exited during create: %w", c.reapError(err))
		}
		switch typ {
		case msgHooks:
			// Hooks may ask for the container's state: it has a pid now.
			if err := c.save(); err != nil {
				return nil, err
			}
			st := c.State()
			st.Status = specs.StateCreating
			st.Pid = c.st.Pid
			if err := hooks.Run("prestart", spec.Hooks.Prestart, &st); err != nil { //nolint:staticcheck
				return nil, err
			}
			if err := hooks.Run("createRuntime", spec.Hooks.CreateRuntime, &st); err != nil {
				return nil, err
			}
			if _, err := sp.sock.Write([]byte{msgHooksRan}); err != nil {
				return nil, err
			}
		case msgReady:
			ready = true
		case msgError:
			return nil, errors.New(string(payload))
		default:
			return nil, fmt.Errorf("unexpected message %q from init", typ)
		}
	}
	// The init closes its end of the socket right after the ready report:
	// wait for that, so that a created container's init holds nothing of
	// ours when create returns (CVE-2024-21626).
	var eof [1]byte
	if n, _ := sp.sock.Read(eof[:]); n != 0 {
		return nil, errors.New("unexpected data from init after ready")
	}
	c.st.Phase = StatusCreated
	if err := c.save(); err != nil {
		return nil, err
	}
	tracef("create: done")
	return c, nil
}

// compileSeccomp compiles the config's seccomp filter in the runtime, so
// that the container's init only has to load it.
func compileSeccomp(spec *specs.Spec) ([]byte, error) {
	_, b, err := compileSeccompProgram(spec)
	return b, err
}

// compileSeccompProgram is compileSeccomp that also returns the program.
func compileSeccompProgram(spec *specs.Spec) (*seccomp.Program, []byte, error) {
	if spec.Linux == nil || spec.Linux.Seccomp == nil {
		return nil, nil, nil
	}
	prog, err := seccomp.Compile(spec.Linux.Seccomp)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: linux.seccomp: %v", ErrInvalidConfig, err)
	}
	b, err := prog.MarshalBinary()
	return prog, b, err
}

// reapError turns an init that died into an error with its exit status.
func (c *Container) reapError(err error) error {
	var ws unix.WaitStatus
	if pid, werr := unix.Wait4(c.st.Pid, &ws, unix.WNOHANG, nil); werr == nil && pid == c.st.Pid {
		c.st.Pid = 0
		if ws.Signaled() {
			return fmt.Errorf("killed by %v", ws.Signal())
		}
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	}
	return err
}

func dialConsole(path string) (*os.File, error) {
	addr := path
	if len(path) > 100 {
		// Longer than a socket address holds: reach it through a
		// descriptor of its directory.
		dir, err := os.Open(filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("console socket %s: %w", path, err)
		}
		defer dir.Close()
		addr = fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	}
	conn, err := net.Dial("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("console socket %s: %w", path, err)
	}
	defer conn.Close()
	f, err := conn.(*net.UnixConn).File()
	if err != nil {
		return nil, fmt.Errorf("console socket %s: %w", path, err)
	}
	return f, nil
}

// Start runs the user's program in a created container, then the poststart hooks.
func (c *Container) Start() error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st := c.Status(); st != StatusCreated {
		return fmt.Errorf("container %s is %s: %w", c.st.ID, st, ErrNotCreated)
	}
	fifoPath := filepath.Join(c.dir, fifoName)
	f, err := os.OpenFile(fifoPath, os.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("container %s: %w", c.st.ID, ErrNotRunning)
		}
		return fmt.Errorf("open exec fifo: %w", err)
	}
	_, err = f.Write([]byte{0})
	f.Close()
	if err != nil {
		return fmt.Errorf("start container %s: %w", c.st.ID, err)
	}
	os.Remove(fifoPath)
	tracef("start: done")
	if h := c.st.Spec.Hooks; h != nil && len(h.Poststart) > 0 {
		// Poststart hooks run after the user's program has started: wait
		// until the init no longer runs berth-runc's binary.
		c.waitExec(5 * time.Second)
		st := c.State()
		// The program may already have exited; the hook still learns
		// which process it was.
		st.Status, st.Pid = specs.StateRunning, c.st.Pid
		if err := hooks.Run("poststart", h.Poststart, &st); err != nil {
			Warn("%v", err)
		}
	}
	return nil
}

// removeSharedParents removes the shared parent of berth's default cgroups
// ("/berth") when no container is left in it.
func removeSharedParents(paths map[string]string) {
	for _, p := range paths {
		if parent := filepath.Dir(p); filepath.Base(parent) == "berth" {
			unix.Rmdir(parent)
		}
	}
}

// waitExec waits until the container's init has exec'd the user's program,
// that is, until its executable is no longer the runtime's own.
func (c *Container) waitExec(d time.Duration) {
	var self unix.Stat_t
	if unix.Stat("/proc/self/exe", &self) != nil {
		return
	}
	exe := "/proc/" + strconv.Itoa(c.st.Pid) + "/exe"
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var st unix.Stat_t
		if unix.Stat(exe, &st) != nil || st.Dev != self.Dev || st.Ino != self.Ino {
			return
		}
	}
}

// Signal sends sig to the container's init, or with all to every process
// in its cgroup.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	status := c.Status()
	if status == StatusStopped {
		return fmt.Errorf("container %s: %w", c.st.ID, ErrNotRunning)
	}
	if all {
		cg := cgroups.Load(c.st.CgroupPaths)
		pids, err := cg.Pids()
		if err != nil {
			return fmt.Errorf("list processes: %w", err)
		}
		for _, p := range pids {
			unix.Kill(p, sig)
		}
		if len(pids) > 0 {
			return nil
		}
	}
	if err := unix.Kill(c.st.Pid, sig); err != nil {
		return fmt.Errorf("signal container %s: %w", c.st.ID, err)
	}
	return nil
}

// Processes lists the host pids of the container's processes.
func (c *Container) Processes() ([]int, error) {
	if len(c.st.CgroupPaths) == 0 {
		if c.alive() {
			return []int{c.st.Pid}, nil
		}
		return nil, nil
	}
	return cgroups.Load(c.st.CgroupPaths).Pids()
}

// killCgroup kills every process in the cgroup and waits for them to go.
func killCgroup(cg *cgroups.Manager) {
	for i := 0; i < 100; i++ {
		pids, err := cg.Pids()
		if err != nil || len(pids) == 0 {
			return
		}
		for _, p := range pids {
			unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(time.Duration(i+1) * time.Millisecond)
	}
}

// waitGone waits up to d for pid (with the given start time) to exit.
func waitGone(pid int, start uint64, d time.Duration) bool {
	if pfd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(pfd)
		if s, _, ok := procStart(pid); !ok || (start != 0 && s != start) {
			return true
		}
		fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, int(d/time.Millisecond))
			if err == unix.EINTR {
				continue
			}
			return n == 1
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		s, zombie, ok := procStart(pid)
		if !ok || zombie || (start != 0 && s != start) {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// Delete removes a stopped (or, with force, any) container: its
// processes, cgroup and state, running the poststop hooks.
func (c *Container) Delete(force bool) error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	status := c.Status()
	switch status {
	case StatusRunning, StatusPaused, StatusCreating:
		if !force {
			return fmt.Errorf("container %s is %s: %w (stop it first or use --force)", c.st.ID, status, ErrRunning)
		}
	}
	cg := cgroups.Load(c.st.CgroupPaths)
	if status != StatusStopped {
		if status == StatusPaused {
			c.thaw()
		}
		unix.Kill(c.st.Pid, unix.SIGKILL)
		if !waitGone(c.st.Pid, c.st.PidStart, 5*time.Second) {
			return fmt.Errorf("container %s: init process %d did not exit after SIGKILL", c.st.ID, c.st.Pid)
		}
	}
	// Without its own pid namespace, the container's other processes
	// outlive its init: kill what is left in the cgroup.
	killCgroup(cg)
	if c.st.Spec != nil && c.st.Spec.Hooks != nil && len(c.st.Spec.Hooks.Poststop) > 0 && c.st.Phase == StatusCreated {
		st := c.State()
		st.Status = specs.StateStopped
		if err := hooks.Run("poststop", c.st.Spec.Hooks.Poststop, &st); err != nil {
			Warn("%v", err)
		}
	}
	if c.st.Spec != nil && !hasNS(c.st.Spec, specs.MountNamespace) && c.st.Rootfs != "" {
		// It mounted into the host's namespace: take those mounts away.
		if err := unmountUnder(c.st.Rootfs); err != nil {
			return fmt.Errorf("container %s: %w", c.st.ID, err)
		}
	}
	if err := cg.Destroy(); err != nil {
		return fmt.Errorf("container %s: %w", c.st.ID, err)
	}
	removeSharedParents(c.st.CgroupPaths)
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("container %s: remove state: %w", c.st.ID, err)
	}
	return nil
}

// thaw unfreezes a paused container so SIGKILL can take effect.
func (c *Container) thaw() {
	for k, p := range c.st.CgroupPaths {
		if k == "freezer" {
			os.WriteFile(filepath.Join(p, "freezer.state"), []byte("THAWED"), 0)
		}
		if k == "" {
			os.WriteFile(filepath.Join(p, "cgroup.freeze"), []byte("0"), 0)
		}
	}
}

// SetExitStatus records the exit status of the init, when the caller reaped it.
func (c *Container) SetExitStatus(code int) error {
	c.st.ExitStatus = &code
	return c.save()
}

// ExecOpts are the options of Exec.
type ExecOpts struct {
	Process       *specs.Process
	ConsoleSocket string
	PreserveFds   int
	Stdio         [3]*os.File
}

// Exec starts a new process in the running container, in all its
// namespaces and its cgroup. It returns the host pid once the program was
// exec'd; the process is a child of the caller.
func (c *Container) Exec(o *ExecOpts) (int, error) {
	status := c.Status()
	if status != StatusRunning && status != StatusCreated {
		return 0, fmt.Errorf("container %s is %s: %w", c.st.ID, status, ErrNotRunning)
	}
	if err := validateProcess(o.Process); err != nil {
		return 0, err
	}
	filter, err := compileSeccomp(c.st.Spec)
	if err != nil {
		return 0, err
	}
	cfg := &initConfig{
		Exec: true, ID: c.st.ID, Process: o.Process, PreserveFds: o.PreserveFds, ConsoleFd: -1, Seccomp: filter,
	}
	req := &spawnRequest{stdio: stdio(o.Stdio), config: cfg, forceFork: true}
	if len(c.st.CgroupPaths) > 0 {
		req.cgroup = cgroups.Load(c.st.CgroupPaths)
	}
	for i := 0; i < o.PreserveFds; i++ {
		req.files = append(req.files, os.NewFile(uintptr(3+i), "preserved-"+strconv.Itoa(3+i)))
	}
	if o.ConsoleSocket != "" {
		f, err := dialConsole(o.ConsoleSocket)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		req.files = append(req.files, f)
		cfg.ConsoleFd = 3 + len(req.files) - 1
	}
	// Join every namespace the container has, the user namespace first
	// (the constructor orders it), the mount namespace making the
	// container's root ours.
	for _, ns := range c.st.Spec.Linux.Namespaces {
		info := nsFlags[ns.Type]
		req.joins = append(req.joins, nsJoin{info.flag, fmt.Sprintf("/proc/%d/ns/%s", c.st.Pid, info.proc)})
	}
	sp, err := spawn(req)
	if err != nil {
		return 0, err
	}
	defer sp.sock.Close()
	typ, payload, err := readMsg(sp.sock)
	if err == nil {
		if typ == msgError {
			var ws unix.WaitStatus
			unix.Wait4(sp.pid, &ws, 0, nil)
			return 0, errors.New(string(payload))
		}
		return 0, fmt.Errorf("unexpected message %q from exec", typ)
	}
	// EOF: the socket closed on exec.
	return sp.pid, nil
}

// unmountUnder detaches every mount at or below dir in our mount
// namespace, the most recent (stacked on top) first.
func unmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	// mountinfo lists mounts in the order they were made: undo in reverse.
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", m.Mountpoint, err)
		}
	}
	return nil
}

// openBindSources makes a detached copy of the source of each bind mount
// of spec, by index, while the runtime still has the host's view and
// credentials: in its own user namespace the container's root may not be
// able to reach a source by path (under a directory only host root may
// search). The init attaches the copies with move_mount. It gives none
// when the caller may not make them.
func openBindSources(spec *specs.Spec, bundle string) (map[int]*os.File, error) {
	out := map[int]*os.File{}
	for i, m := range spec.Mounts {
		opts := rootfs.ParseMountOptions(m.Options)
		if m.Type != "bind" && opts.Flags&unix.MS_BIND == 0 {
			continue
		}
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
		if opts.Flags&unix.MS_REC != 0 {
			flags |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, src, uint(flags))
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
				// A caller without CAP_SYS_ADMIN (rootless) or an old
				// kernel: the init binds the sources by path, which the
				// caller's own user namespace can reach anyway.
				return nil, nil
			}
			return nil, fmt.Errorf("mount %s on %s: bind source: %w", m.Source, m.Destination, err)
		}
		out[i] = os.NewFile(uintptr(fd), src)
	}
	return out, nil
}
