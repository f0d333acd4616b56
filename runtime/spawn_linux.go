package runtime

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/cgroups"
)

const initPipeEnv = "_BERTH_INITPIPE"

// nsFlags maps runtime-spec namespace types to clone flags and /proc/PID/ns names.
var nsFlags = map[specs.LinuxNamespaceType]struct {
	flag uintptr
	proc string
}{
	specs.PIDNamespace:     {unix.CLONE_NEWPID, "pid"},
	specs.NetworkNamespace: {unix.CLONE_NEWNET, "net"},
	specs.MountNamespace:   {unix.CLONE_NEWNS, "mnt"},
	specs.IPCNamespace:     {unix.CLONE_NEWIPC, "ipc"},
	specs.UTSNamespace:     {unix.CLONE_NEWUTS, "uts"},
	specs.UserNamespace:    {unix.CLONE_NEWUSER, "user"},
	specs.CgroupNamespace:  {unix.CLONE_NEWCGROUP, "cgroup"},
	specs.TimeNamespace:    {unix.CLONE_NEWTIME, "time"},
}

type nsJoin struct {
	flag uintptr
	path string
}

// spawnRequest describes one process to start in a container's namespaces.
type spawnRequest struct {
	clone     uintptr // namespaces to create
	joins     []nsJoin
	timens    []string // "monotonic S N" lines
	forceFork bool
	uidMaps   []specs.LinuxIDMapping
	gidMaps   []specs.LinuxIDMapping
	cgroup    *cgroups.Manager
	// cgroupReady, when set, reports whether the cgroup was made; spawn
	// waits for it before moving the process in.
	cgroupReady func() error
	files       []*os.File // become fds 3, 4, ... in the child (preserved fds first)
	stdio       [3]*os.File
	config      *initConfig
	// plan, when set, is the C init's plan (cinitPlan): the init never
	// starts Go, and config is not sent.
	plan []byte
	// starter, when set, starts the process instead of exec.Cmd (see
	// CreateOpts.Starter).
	starter func(*InitProcess) (int, error)
}

// spawned is a started process that waits for the rest of the protocol.
type spawned struct {
	pid  int
	sock *os.File
}

// readonlyExe returns a handle on the running binary that the container
// can execute (as its init) but never write through, so a container that
// gets hold of /proc/PID/exe cannot overwrite berth-runc on the host
// (CVE-2019-5736).
//
// As root it is a detached, read-only bind mount of the binary made with
// open_tree(2): no copy, no mount visible anywhere, and a write through it
// fails with EROFS. Without the privilege for that, it falls back to a
// sealed in-memory copy (memfd), which costs a copy of the binary per run.
// minFd keeps the handle above the descriptors the child gets, so fd
// shuffling in fork can't clobber it before execve resolves
// /proc/self/fd/N; it stays below 64 so the fd table needs no growing
// (growing it in a threaded process waits for an RCU grace period).
func readonlyExe(minFd int) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV})
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		if fd, err = sealedCopy(); err != nil {
			return nil, err
		}
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, minFd)
	unix.Close(fd)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(high), "berth-runc-exe"), nil
}

// sealedCopy copies the running binary into a sealed memfd.
func sealedCopy() (int, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return -1, err
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth-runc", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "berth-runc-exe")
	if _, err := io.Copy(mem, src); err != nil {
		mem.Close()
		return -1, fmt.Errorf("copy runtime binary: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		mem.Close()
		return -1, fmt.Errorf("seal runtime binary: %w", err)
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	mem.Close()
	return dup, err
}

func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "init-parent"), os.NewFile(uintptr(fds[1]), "init-child"), nil
}

// spawn starts the init process, runs the nsenter handshake, and sends the
// init configuration. On error nothing it started is left running.
func spawn(req *spawnRequest) (_ *spawned, retErr error) {
	parent, child, err := socketPair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	files := append(append([]*os.File{}, req.files...), child)
	exe, err := readonlyExe(3 + len(files))
	if err != nil {
		parent.Close()
		return nil, err
	}
	defer exe.Close()
	req.config.InitFd = 3 + len(files) - 1
	cmd := &exec.Cmd{
		Path: "/proc/self/fd/" + strconv.Itoa(int(exe.Fd())),
		Args: []string{"berth-runc", "init"},
		// The init is short-lived and single-minded: one P and no GC
		// spare it the Go runtime's thread wake-ups (measured: ~1 ms).
		Env:        []string{initPipeEnv + "=" + strconv.Itoa(req.config.InitFd), "GOMAXPROCS=1", "GOGC=off"},
		Stdin:      req.stdio[0],
		Stdout:     req.stdio[1],
		Stderr:     req.stdio[2],
		ExtraFiles: files,
	}
	// Without a user or time namespace and with nothing to join, the init
	// is cloned straight into its new namespaces (pid 1 of its pid
	// namespace): the constructor has nothing to unshare and no
	// intermediate process to fork.
	// Joining a network, IPC, UTS, cgroup or mount namespace needs no
	// fork either: the single-threaded constructor setns()es into them.
	direct := req.clone&(unix.CLONE_NEWUSER|unix.CLONE_NEWTIME) == 0 && !req.forceFork
	for _, j := range req.joins {
		if j.flag&(unix.CLONE_NEWUSER|unix.CLONE_NEWPID|unix.CLONE_NEWTIME) != 0 {
			direct = false
		}
	}
	if direct {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: req.clone &^ unix.CLONE_NEWCGROUP}
	}
	req.config.Trace = traceOn
	tracef("spawn: exec init")
	// stage is the process started here: the init itself, or (not
	// direct) the constructor that forks the init and exits.
	var stage stageProc
	if req.starter != nil {
		p := &InitProcess{Exe: exe, Args: cmd.Args, Env: cmd.Env, Files: files}
		if direct {
			p.Cloneflags = req.clone &^ unix.CLONE_NEWCGROUP
		}
		pid, err := req.starter(p)
		if err != nil {
			parent.Close()
			return nil, fmt.Errorf("start init: %w", err)
		}
		stage = startedStage(pid)
	} else {
		if err := cmd.Start(); err != nil {
			parent.Close()
			return nil, fmt.Errorf("start init: %w", err)
		}
		stage = cmdStage{cmd}
	}
	stagePid := stage.pid()
	sp := &spawned{pid: stagePid, sock: parent}
	defer func() {
		if retErr != nil {
			parent.Close()
			stage.kill()
			if sp.pid != stagePid && req.starter == nil {
				unix.Kill(sp.pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(sp.pid, &ws, 0, nil)
			}
			stage.wait()
		}
	}()
	child.Close()

	var b strings.Builder
	// The cgroup namespace is made by init, once it is in its cgroup.
	if direct {
		b.WriteString("clone 0\n")
	} else {
		fmt.Fprintf(&b, "clone %x\n", req.clone&^unix.CLONE_NEWCGROUP)
	}
	for _, j := range req.joins {
		fmt.Fprintf(&b, "join %x %s\n", j.flag, j.path)
	}
	for _, t := range req.timens {
		fmt.Fprintf(&b, "timens %s\n", t)
	}
	if req.forceFork {
		b.WriteString("fork\n")
	}
	if req.plan != nil {
		b.WriteString("cinit\n")
	}
	msg := make([]byte, 4, 4+b.Len())
	binary.LittleEndian.PutUint32(msg, uint32(b.Len()))
	msg = append(msg, b.String()...)
	// On cgroup v1 the constructor moves itself into the container's
	// cgroups (see cgroups.Manager.TaskFiles): it gets the tasks files
	// with the namespace message, once the directories exist.
	// The C init joins later, when the plan says so (cinitPlan): the
	// namespace message need not wait for the cgroup directories.
	joined := false
	if req.cgroup != nil && req.plan == nil {
		if req.cgroupReady != nil {
			if err := req.cgroupReady(); err != nil {
				return nil, err
			}
		}
		tasks, ok, err := req.cgroup.TaskFiles()
		if err != nil {
			return nil, err
		}
		if ok {
			fds := make([]int, len(tasks))
			for i, f := range tasks {
				fds[i] = int(f.Fd())
			}
			err = unix.Sendmsg(int(parent.Fd()), msg, unix.UnixRights(fds...), nil, 0)
			for _, f := range tasks {
				f.Close()
			}
			if err != nil {
				return nil, fmt.Errorf("send namespaces to init: %w", err)
			}
			joined = true
			msg = nil
		}
	}
	if msg != nil {
		if _, err := parent.Write(msg); err != nil {
			return nil, fmt.Errorf("send namespaces to init: %w", err)
		}
	}
	for sp.pid == stagePid {
		typ, payload, err := readMsg(parent)
		if err != nil {
			return nil, fmt.Errorf("init exited while entering namespaces: %w", childExit(stage, err))
		}
		switch typ {
		case msgUserns:
			if err := writeIDMaps(stagePid, req.uidMaps, req.gidMaps); err != nil {
				return nil, err
			}
			if _, err := parent.Write([]byte{'u'}); err != nil {
				return nil, err
			}
		case msgPid:
			if len(payload) != 4 {
				return nil, errors.New("bad pid message from init")
			}
			sp.pid = int(int32(binary.LittleEndian.Uint32(payload)))
			if direct {
				// Inside its pid namespace the init sees itself as 1.
				sp.pid = stagePid
			}
			if sp.pid == stagePid {
				// No fork: the init is the process we started.
				goto started
			}
		case msgError:
			return nil, fmt.Errorf("enter namespaces: %s", payload)
		default:
			return nil, fmt.Errorf("unexpected message %q from init", typ)
		}
	}
	// The intermediate process reported the real init and exits.
	if err := stage.wait(); err != nil {
		return nil, fmt.Errorf("nsenter: %w", err)
	}
started:
	tracef("spawn: init pid %d", sp.pid)
	if req.config.State.ID != "" {
		req.config.State.Pid = sp.pid
	}
	if req.plan != nil {
		if err := writeMsg(parent, msgPlan, req.plan); err != nil {
			return nil, fmt.Errorf("send plan to init: %w", err)
		}
	} else {
		data, err := json.Marshal(req.config)
		if err != nil {
			return nil, err
		}
		if err := writeMsg(parent, msgConfig, data); err != nil {
			return nil, fmt.Errorf("send config to init: %w", err)
		}
	}
	// Joining a cgroup takes the kernel's cgroup_threadgroup_rwsem for
	// writing, which waits for an RCU grace period (milliseconds) and
	// meanwhile blocks every fork and thread creation of the process.
	// So wait until init's Go runtime has started its threads, then
	// join while init builds its root filesystem; init waits for
	// msgCgroup only before it needs the cgroup.
	typ, payload, err := readMsg(parent)
	if err != nil {
		return nil, fmt.Errorf("init exited before starting: %w", err)
	}
	switch typ {
	case msgRunning:
	case msgError:
		return nil, errors.New(string(payload))
	default:
		return nil, fmt.Errorf("unexpected message %q from init", typ)
	}
	if req.cgroupReady != nil {
		if err := req.cgroupReady(); err != nil {
			return nil, err
		}
	}
	if req.cgroup != nil && !joined && req.plan != nil {
		// The C init writes "0" to the v1 tasks files sent with
		// msgCgroup, as the constructor does for the Go init.
		tasks, ok, err := req.cgroup.TaskFiles()
		if err != nil {
			return nil, err
		}
		if ok {
			fds := make([]int, len(tasks))
			for i, f := range tasks {
				fds[i] = int(f.Fd())
			}
			hdr := []byte{msgCgroup, 0, 0, 0, 0}
			// If init already failed, this fails too; the caller reads
			// init's error report from the socket.
			unix.Sendmsg(int(parent.Fd()), hdr, unix.UnixRights(fds...), nil, 0)
			for _, f := range tasks {
				f.Close()
			}
			return sp, nil
		}
	}
	if req.cgroup != nil && !joined {
		if err := req.cgroup.Add(sp.pid); err != nil {
			return nil, err
		}
	}
	// If init already failed, this write fails too; the caller reads
	// init's error report from the socket.
	writeMsg(parent, msgCgroup, nil)
	return sp, nil
}

func childExit(stage stageProc, err error) error {
	if werr := stage.wait(); werr != nil {
		return werr
	}
	return err
}

// stageProc is the process spawn started: our child (cmdStage), or a
// process a Starter started (startedStage), which its own parent reaps.
type stageProc interface {
	pid() int
	kill()
	wait() error // its exit status; nil when it cannot be known
}

type cmdStage struct{ cmd *exec.Cmd }

func (s cmdStage) pid() int    { return s.cmd.Process.Pid }
func (s cmdStage) kill()       { s.cmd.Process.Kill() }
func (s cmdStage) wait() error { return s.cmd.Wait() }

// startedStage needs no kill: it exits when its socket closes, and its
// parent (the starter's side) kills it when the start fails.
type startedStage int

func (s startedStage) pid() int    { return int(s) }
func (s startedStage) kill()       {}
func (s startedStage) wait() error { return nil }

func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	format := func(m []specs.LinuxIDMapping) []byte {
		var b strings.Builder
		for _, e := range m {
			fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
		}
		return []byte(b.String())
	}
	base := "/proc/" + strconv.Itoa(pid) + "/"
	if len(uids) > 0 {
		if err := os.WriteFile(base+"uid_map", format(uids), 0); err != nil {
			return fmt.Errorf("write uidMappings: %w", err)
		}
	}
	if len(gids) > 0 {
		if err := os.WriteFile(base+"gid_map", format(gids), 0); err != nil {
			return fmt.Errorf("write gidMappings: %w", err)
		}
	}
	return nil
}
