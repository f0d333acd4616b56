package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/caps"
	"github.com/berth-project/berth/runtime/console"
	"github.com/berth-project/berth/runtime/hooks"
	"github.com/berth-project/berth/runtime/rootfs"
	"github.com/berth-project/berth/runtime/seccomp"
)

// initConfig is what the parent sends the init process once it is in its
// namespaces.
type initConfig struct {
	Exec         bool              `json:"exec,omitempty"` // exec into a running container rather than create one
	ID           string            `json:"id"`
	Spec         *specs.Spec       `json:"spec,omitempty"`    // create: the whole config
	Process      *specs.Process    `json:"process,omitempty"` // exec; create: Spec.Process
	Rootfs       string            `json:"rootfs,omitempty"`
	NoPivot      bool              `json:"no_pivot,omitempty"`
	NoNewKeyring bool              `json:"no_new_keyring,omitempty"`
	NewMountNS   bool              `json:"new_mount_ns,omitempty"`
	NoMountNS    bool              `json:"no_mount_ns,omitempty"` // shares the runtime's mount namespace
	UserNS       bool              `json:"userns,omitempty"`
	SourceFds    map[int]int       `json:"source_fds,omitempty"`
	CgroupNS     bool              `json:"cgroupns,omitempty"`
	CgroupPaths  map[string]string `json:"cgroup_paths,omitempty"`
	RuntimeHooks bool              `json:"runtime_hooks,omitempty"` // ask the parent to run createRuntime/prestart hooks
	State        specs.State       `json:"state"`
	InitFd       int               `json:"init_fd"`
	FifoFd       int               `json:"fifo_fd"`    // create: read one byte from it to start
	ConsoleFd    int               `json:"console_fd"` // -1: no console socket
	PreserveFds  int               `json:"preserve_fds"`
	Trace        bool              `json:"trace,omitempty"`
	Seccomp      []byte            `json:"seccomp,omitempty"` // compiled by the parent (seccomp.Program)
}

// IsInit reports whether this process was spawned as a container init; the
// binary's main must then call Init and nothing else.
func IsInit() bool {
	return len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv(initPipeEnv) != ""
}

// Init is the container side of create and exec. It never returns: it execs
// the container's program or exits after reporting the error to the parent.
func Init() {
	fd, err := strconv.Atoi(os.Getenv(initPipeEnv))
	if err != nil || fd < 3 {
		fmt.Fprintln(os.Stderr, "berth-runc init: not started by berth-runc")
		os.Exit(1)
	}
	// no_new_privs and seccomp are per thread: exec from the thread that set them.
	goruntime.LockOSThread()
	sock := fdIO(fd)
	if err := runInit(sock); err != nil {
		writeMsg(sock, msgError, []byte(err.Error()))
		os.Exit(1)
	}
	os.Exit(1) // unreachable: runInit execs
}

func runInit(sock fdIO) error {
	typ, data, err := readMsg(sock)
	if err != nil {
		return fmt.Errorf("read init config: %w", err)
	}
	if typ != msgConfig {
		return fmt.Errorf("unexpected message %q", typ)
	}
	if err := writeMsg(sock, msgRunning, nil); err != nil {
		return err
	}
	var cfg initConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("decode init config: %w", err)
	}
	traceOn = cfg.Trace
	tracef("init: config read")
	if cfg.Process == nil && cfg.Spec != nil {
		cfg.Process = cfg.Spec.Process // create sends the process once, in the spec
	}
	os.Clearenv()
	// Only the preserved fds (3 .. 3+N-1) and stdio may reach the
	// container's program; everything else of ours closes on exec.
	if err := closeOnExecFrom(3 + cfg.PreserveFds); err != nil {
		return err
	}
	if cfg.Exec {
		return execProcess(&cfg, sock)
	}
	return createInit(&cfg, sock)
}

// awaitCgroup waits until the parent has put this process into its cgroup,
// then, if asked, makes the cgroup namespace (rooted at that cgroup). The
// namespace belongs to this thread only until exec, which is why Init
// locks itself to its thread.
func awaitCgroup(sock fdIO, newNS bool) error {
	typ, _, err := readMsg(sock)
	if err != nil {
		return fmt.Errorf("wait for cgroup: %w", err)
	}
	if typ != msgCgroup {
		return fmt.Errorf("unexpected message %q while waiting for the cgroup", typ)
	}
	if newNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("create cgroup namespace: %w", err)
		}
	}
	return nil
}

// closeStrayFds closes every fd >= min except keep and the Go runtime's
// own anonymous descriptors (its poller), which hold nothing of the host.
func closeStrayFds(min int, keep ...int) error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list fds: %w", err)
	}
	kept := map[int]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n < min || kept[n] {
			continue
		}
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || strings.HasPrefix(link, "anon_inode:") {
			continue
		}
		unix.Close(n)
	}
	return nil
}

// closeOnExecFrom marks every open fd >= min close-on-exec.
func closeOnExecFrom(min int) error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list fds: %w", err)
	}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n < min {
			continue
		}
		unix.CloseOnExec(n)
	}
	return nil
}

func createInit(cfg *initConfig, sock fdIO) error {
	spec := cfg.Spec
	rc := &rootfs.Config{
		Rootfs:        cfg.Rootfs,
		Spec:          spec,
		NoPivot:       cfg.NoPivot,
		UserNS:        cfg.UserNS,
		SourceFds:     cfg.SourceFds,
		CgroupPaths:   cfg.CgroupPaths,
		CgroupNS:      cfg.CgroupNS,
		SharedMountNS: cfg.NoMountNS,
	}
	cgroupReady := false
	joinCgroup := func() error {
		if cgroupReady {
			return nil
		}
		cgroupReady = true
		return awaitCgroup(sock, cfg.CgroupNS)
	}
	// A fresh cgroup2 mount needs the cgroup namespace, so on v2 wait for
	// the cgroup first; v1 bind-mounts the container's groups by path.
	if _, v2 := cfg.CgroupPaths[""]; v2 || len(cfg.CgroupPaths) == 0 {
		if err := joinCgroup(); err != nil {
			return err
		}
	}
	buildRoot := cfg.NewMountNS || cfg.NoMountNS
	if buildRoot {
		if err := rootfs.Prepare(rc); err != nil {
			return err
		}
		if cwd := spec.Process.Cwd; cwd != "" {
			if err := mkdirInRoot(cfg.Rootfs, cwd); err != nil {
				return fmt.Errorf("process.cwd %s: %w", cwd, err)
			}
		}
	}
	tracef("init: rootfs prepared")
	if err := joinCgroup(); err != nil {
		return err
	}
	tracef("init: in cgroup")
	if cfg.RuntimeHooks {
		if err := writeMsg(sock, msgHooks, nil); err != nil {
			return err
		}
		var b [1]byte
		if _, err := sock.Read(b[:]); err != nil || b[0] != msgHooksRan {
			return errors.New("runtime hooks failed")
		}
	}
	if spec.Hooks != nil && len(spec.Hooks.CreateContainer) > 0 {
		if err := hooks.Run("createContainer", spec.Hooks.CreateContainer, &cfg.State); err != nil {
			return err
		}
	}
	if buildRoot {
		if err := rootfs.Pivot(rc); err != nil {
			return err
		}
		tracef("init: pivoted")
	} else if err := unix.Chdir("/"); err != nil {
		return err
	}
	// Hostname and sysctls before Finalize makes /proc/sys read-only.
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("set domainname %q: %w", spec.Domainname, err)
		}
	}
	if spec.Linux != nil {
		for k, v := range spec.Linux.Sysctl {
			p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("linux.sysctl %s=%s: %w", k, v, err)
			}
		}
	}
	if buildRoot {
		if err := rootfs.Finalize(rc); err != nil {
			return err
		}
		tracef("init: finalized")
	}
	if !cfg.NoNewKeyring {
		if _, err := unix.KeyctlJoinSessionKeyring("_ses." + cfg.ID); err != nil && err != unix.ENOSYS && err != unix.EACCES {
			return fmt.Errorf("join session keyring: %w", err)
		}
	}
	if spec.Process.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*spec.Process.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("process.oomScoreAdj: %w", err)
		}
	}
	if err := setupProcess(cfg); err != nil {
		return err
	}
	// Nothing but stdio, preserved fds and our own may stay open in a
	// created container's init (CVE-2024-21626).
	if err := closeStrayFds(3+cfg.PreserveFds, cfg.InitFd, cfg.FifoFd, cfg.ConsoleFd); err != nil {
		return err
	}
	tracef("init: ready")
	// Created: tell the parent, then wait until start writes to the fifo.
	if err := writeMsg(sock, msgReady, nil); err != nil {
		return err
	}
	unix.Close(int(sock))
	var b [1]byte
	for {
		n, err := unix.Read(cfg.FifoFd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != 1 {
			os.Exit(1)
		}
		break
	}
	unix.Close(cfg.FifoFd)
	tracef("init: started")
	if spec.Hooks != nil && len(spec.Hooks.StartContainer) > 0 {
		st := cfg.State
		st.Status = specs.StateRunning
		st.Pid = 1
		if err := hooks.Run("startContainer", spec.Hooks.StartContainer, &st); err != nil {
			fmt.Fprintln(os.Stderr, "berth-runc:", err)
			os.Exit(1)
		}
	}
	if err := finishProcess(cfg.Process, cfg.Seccomp); err != nil {
		fmt.Fprintln(os.Stderr, "berth-runc:", err)
		os.Exit(execFailureCode(err))
	}
	return nil
}

// execFailureCode is the exit status of an init whose program could not
// run, as shells and Docker use them: 127 when it is not there, 126 when
// it is there but cannot be executed.
func execFailureCode(err error) int {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOEXEC) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		return 126
	}
	return 127
}

// execProcess runs in a process that already joined every namespace of a
// running container (so its root is the container's root).
func execProcess(cfg *initConfig, sock fdIO) error {
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := awaitCgroup(sock, false); err != nil {
		return err
	}
	if err := setupProcess(cfg); err != nil {
		return err
	}
	// The socket closes on exec: EOF tells the parent the exec happened.
	return finishProcess(cfg.Process, cfg.Seccomp)
}

// setupProcess applies what must happen before the ready report: rlimits,
// the terminal.
func setupProcess(cfg *initConfig) error {
	p := cfg.Process
	for _, rl := range p.Rlimits {
		res, ok := rlimitTypes[rl.Type]
		if !ok {
			return fmt.Errorf("process.rlimits: unknown type %q", rl.Type)
		}
		lim := unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		if err := unix.Prlimit(0, res, &lim, nil); err != nil {
			return fmt.Errorf("process.rlimits %s: %w", rl.Type, err)
		}
	}
	if p.Terminal {
		if cfg.ConsoleFd < 0 {
			return errors.New("process.terminal is true but no --console-socket was given")
		}
		master, slave, err := console.NewPty("/dev/ptmx")
		if err != nil {
			return fmt.Errorf("create terminal: %w", err)
		}
		if p.ConsoleSize != nil {
			console.SetSize(master, console.Size{Rows: uint16(p.ConsoleSize.Height), Cols: uint16(p.ConsoleSize.Width)})
		}
		sockf := os.NewFile(uintptr(cfg.ConsoleFd), "console-socket")
		if err := console.SendFd(sockf, master.Name(), master); err != nil {
			return fmt.Errorf("send terminal to console socket: %w", err)
		}
		master.Close()
		sockf.Close()
		if err := console.SetupSlave(slave); err != nil {
			return fmt.Errorf("set up terminal: %w", err)
		}
	}
	return nil
}

// finishProcess sets identity, confinement and cwd, then execs the program.
func finishProcess(p *specs.Process, filter []byte) error {
	if len(p.Args) == 0 {
		return errors.New("process.args must not be empty")
	}
	env := p.Env
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return err
	}
	if p.Cwd != "" && !strings.HasPrefix(p.Cwd, "/") {
		return fmt.Errorf("process.cwd %q must be an absolute path", p.Cwd)
	}
	if p.Cwd != "" {
		if err := unix.Chdir(p.Cwd); err != nil {
			return fmt.Errorf("process.cwd %s: %w", p.Cwd, err)
		}
		// The cwd must be inside the container's root (CVE-2024-21626).
		if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
			return fmt.Errorf("process.cwd %s is outside the container's root", p.Cwd)
		}
	}
	if err := confine(p, filter); err != nil {
		return err
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	} else {
		unix.Umask(0o022)
	}
	if err := unix.Exec(path, p.Args, env); err != nil {
		return fmt.Errorf("exec %s: %w", p.Args[0], err)
	}
	return nil
}

// confine switches to the process's user and applies its confinement, in
// the order the kernel needs: keep the permitted set across the uid
// change, shrink the bounding set while we still may, change ids, then
// set the capability sets and the ambient set; no_new_privs and the LSM
// exec labels last. All of it acts on this thread, which then execs.
func confine(p *specs.Process, filter []byte) error {
	set, skipped, err := caps.FromSpec(p.Capabilities)
	if err != nil {
		return err
	}
	var prog *seccomp.Program
	if len(filter) > 0 {
		prog = new(seccomp.Program)
		if err := prog.UnmarshalBinary(filter); err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
		// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN:
		// do it while we still have it. Otherwise as late as possible.
		if !p.NoNewPrivileges {
			if err := prog.Load(); err != nil {
				return fmt.Errorf("linux.seccomp: %w", err)
			}
			prog = nil
		}
	}
	for _, name := range skipped {
		fmt.Fprintf(os.Stderr, "berth-runc: warning: the kernel does not know %s; not granted\n", name)
	}
	if p.Capabilities != nil {
		if err := caps.KeepCaps(true); err != nil {
			return err
		}
		if err := caps.DropBounding(set); err != nil {
			return err
		}
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if p.Capabilities != nil {
		if err := caps.KeepCaps(false); err != nil {
			return err
		}
		if err := caps.Apply(set); err != nil {
			return fmt.Errorf("process.capabilities: %w", err)
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}
	if prog != nil {
		if err := prog.Load(); err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
	}
	if p.ApparmorProfile != "" {
		if err := writeThreadAttr("apparmor/exec", "exec "+p.ApparmorProfile); err != nil {
			return fmt.Errorf("process.apparmorProfile %q: %w", p.ApparmorProfile, err)
		}
	}
	if p.SelinuxLabel != "" {
		if err := writeThreadAttr("exec", p.SelinuxLabel); err != nil {
			return fmt.Errorf("process.selinuxLabel %q: %w", p.SelinuxLabel, err)
		}
	}
	return nil
}

// writeThreadAttr sets an LSM attribute of this thread for its next exec.
func writeThreadAttr(name, value string) error {
	return os.WriteFile("/proc/thread-self/attr/"+name, []byte(value), 0)
}

func setUser(u specs.User) error {
	groups := make([]int, 0, len(u.AdditionalGids))
	for _, g := range u.AdditionalGids {
		groups = append(groups, int(g))
	}
	// The syscall package's set*id calls change every thread, not just this one.
	if err := syscall.Setgroups(groups); err != nil && !(len(groups) == 0 && err == syscall.EPERM) {
		return fmt.Errorf("process.user.additionalGids: %w", err)
	}
	if err := syscall.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("process.user.gid %d: %w", u.GID, err)
	}
	if err := syscall.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("process.user.uid %d: %w", u.UID, err)
	}
	return nil
}

// lookPath resolves a program name with the container's PATH, inside the
// current root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			path = e[5:]
		}
	}
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

var rlimitTypes = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// mkdirInRoot creates dir (and its parents) inside root without following
// any symlink out of it.
func mkdirInRoot(root, dir string) error {
	return pathrs.MkdirAll(root, dir, 0o755)
}
