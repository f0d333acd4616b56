package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrNoPlan says that a configuration needs something Plan does not
// express; the caller then builds the root filesystem with Prepare, Pivot
// and Finalize in a Go init instead.
var ErrNoPlan = errors.New("rootfs: configuration not plannable")

// StepOp is the kind of one planned step.
type StepOp uint8

// The steps of a plan. Container paths (Dest of the *In steps) are clean
// and absolute, taken inside the root: the executor resolves them against
// a handle on the rootfs with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)
// at the moment it acts, creating missing directories one checked
// component at a time, so nothing the parent resolved in advance can be
// raced by a rootfs that changes meanwhile.
const (
	// StepMount is mount(Source, Dest, FSType, Flags, Data) on a host path
	// (before the root switch) or a container path (after it).
	StepMount StepOp = iota + 1
	// StepOpenRoot checks that /proc is a procfs and opens the rootfs
	// (Dest, a host path) as the root handle for the *In steps.
	StepOpenRoot
	// StepMountIn is one mountOne: create Dest inside the root (a
	// directory, or for a bind of a non-directory an empty file), mount
	// onto it through its O_PATH handle, reopen it and check it is a mount
	// root, then the bind remount (Remount), the tmpfs mode (KeepMode),
	// each Propagation and RecAttr.
	StepMountIn
	// StepSymlinkIn creates the symlink Name -> Target in directory Dest
	// (created if missing); Replace removes an existing Name first,
	// otherwise an existing Name is kept.
	StepSymlinkIn
	// StepMknodIn creates the device node Dest (Mode, Dev, UID, GID),
	// keeping an existing one and binding the host's node (Source) when
	// mknod is refused.
	StepMknodIn
	// StepMkdirIn creates directory Dest and its parents inside the root.
	StepMkdirIn
	// StepPivot makes Dest (the rootfs) the root: pivot_root(".", "."),
	// the old root made rslave and detached, cwd "/".
	StepPivot
	// StepRemount remounts Dest (after the pivot) with Flags, retrying
	// while the kernel reports EBUSY when RetryBusy.
	StepRemount
	// StepReadonly bind-mounts Dest onto itself and makes it read-only.
	StepReadonly
	// StepMask hides Dest behind the checked /dev/null or an empty
	// read-only tmpfs.
	StepMask
)

// Step is one operation of a root filesystem plan.
type Step struct {
	Op          StepOp
	Source      string
	FSType      string
	Dest        string
	Data        string
	Target      string // StepSymlinkIn: the link's target
	Name        string // StepSymlinkIn: the link's name in Dest
	Err         string // prefix of any error ("mount proc (proc) on /proc")
	Flags       uintptr
	Remount     uintptr // StepMountIn: flags of the bind remount, 0 for none
	Propagation []uintptr
	RecAttr     *unix.MountAttr
	Mode        uint32
	Dev         uint64
	UID, GID    uint32

	Bind         bool // StepMountIn: a bind mount (Source decides file or directory)
	KeepMode     bool // StepMountIn: a tmpfs over an existing directory takes its mode
	CheckProcSys bool // StepMountIn: no component of Dest may be a symlink
	NeedDir      bool // StepMountIn with CheckProcSys: Dest itself must be a directory
	ProcSource   bool // StepMountIn on /proc by bind: Source must be a procfs
	Replace      bool // StepSymlinkIn
	RetryBusy    bool // StepRemount
	// Cgroup marks the first step of a cgroup mount: from here on the
	// container's cgroup directories (Config.CgroupPaths) must exist.
	Cgroup bool
}

// PlanPrepare returns the steps Prepare would take, for an executor that
// runs without the Go runtime (the container init's C path). It returns
// ErrNoPlan for what only Prepare handles: a shared mount namespace, user
// namespaces, tmpcopyup, cgroup v2 mounts. Configuration errors are the
// errors Prepare would report.
func PlanPrepare(c *Config) ([]Step, error) {
	if c.SharedMountNS || c.UserNS || c.NoPivot {
		return nil, ErrNoPlan
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	prop, err := ParsePropagation(c.rootfsPropagation())
	if err != nil {
		return nil, err
	}
	mounts, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	steps := []Step{{Op: StepMount, Dest: "/", Flags: prop, Err: "set propagation of / (" + propagationName(prop) + ")"}}
	// makeParentPrivate runs after the propagation change: a recursive
	// slave or private leaves nothing shared.
	if parent, ok := mountFor(mounts, c.Rootfs); ok {
		shared := parent.shared()
		if prop&unix.MS_REC != 0 || parent.Mountpoint == "/" {
			shared = prop&unix.MS_SHARED != 0 || (shared && prop&(unix.MS_SLAVE|unix.MS_PRIVATE|unix.MS_UNBINDABLE) == 0)
		}
		if shared {
			steps = append(steps, Step{Op: StepMount, Dest: parent.Mountpoint, Flags: unix.MS_PRIVATE, Err: "make parent mount " + parent.Mountpoint + " of rootfs private"})
		}
	}
	steps = append(steps,
		Step{Op: StepMount, Source: c.Rootfs, Dest: c.Rootfs, Flags: unix.MS_BIND | unix.MS_REC, Err: "bind rootfs " + c.Rootfs + " onto itself"},
		Step{Op: StepOpenRoot, Dest: c.Rootfs})
	for _, m := range c.Spec.Mounts {
		s, err := planEntry(c, m, mounts)
		if err != nil {
			return nil, err
		}
		steps = append(steps, s...)
	}
	if !devIsBind(c.Spec.Mounts) {
		for _, d := range devicesFor(c.Spec) {
			mode, err := deviceMode(d)
			if err == nil && d.Path == "" {
				err = errors.New("empty path")
			}
			if err != nil {
				return nil, fmt.Errorf("device %s (%s %d:%d): %w", d.Path, d.Type, d.Major, d.Minor, err)
			}
			s := Step{Op: StepMknodIn, Dest: cleanDest(d.Path), Source: d.Path, Mode: mode,
				Dev: unix.Mkdev(uint32(d.Major), uint32(d.Minor)), Err: fmt.Sprintf("device %s (%s %d:%d)", d.Path, d.Type, d.Major, d.Minor)}
			if d.UID != nil {
				s.UID = *d.UID
			}
			if d.GID != nil {
				s.GID = *d.GID
			}
			steps = append(steps, s)
		}
		links := [][2]string{{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}}
		if _, err := os.Stat("/proc/kcore"); err == nil {
			links = append(links, [2]string{"core", "/proc/kcore"})
		}
		for _, l := range links {
			steps = append(steps, Step{Op: StepSymlinkIn, Dest: "/dev", Name: l[0], Target: l[1], Err: "symlink /dev/" + l[0] + " -> " + l[1]})
		}
		steps = append(steps, Step{Op: StepSymlinkIn, Dest: "/dev", Name: "ptmx", Target: "pts/ptmx", Replace: true, Err: "symlink /dev/ptmx -> pts/ptmx"})
	}
	return steps, nil
}

// planEntry is mountEntry as steps.
func planEntry(c *Config, m specs.Mount, mounts []mountInfo) ([]Step, error) {
	prefix := fmt.Sprintf("mount %s (%s) on %s", m.Source, m.Type, m.Destination)
	wrap := func(err error) error { return fmt.Errorf("%s: %w", prefix, err) }
	if m.Destination == "" {
		return nil, wrap(errors.New("empty destination"))
	}
	dest := cleanDest(m.Destination)
	if dest == "/" {
		return nil, wrap(errors.New("cannot mount over the container's root"))
	}
	if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
		return nil, wrap(errors.New("idmapped mounts are not supported"))
	}
	opts := ParseMountOptions(m.Options)
	for _, d := range strings.Split(opts.Data, ",") {
		if d == "idmap" || d == "ridmap" || strings.HasPrefix(d, "idmap=") || strings.HasPrefix(d, "ridmap=") {
			return nil, wrap(errors.New("idmapped mounts are not supported"))
		}
	}
	if m.Type == "bind" {
		opts.Flags |= unix.MS_BIND
	}
	bind := opts.Flags&unix.MS_BIND != 0
	fstype := m.Type
	if bind {
		fstype = ""
	} else if fstype == "" || fstype == "none" {
		return nil, wrap(errors.New("no filesystem type and not a bind mount"))
	}
	if opts.CopyUp {
		if m.Type != "tmpfs" {
			return nil, wrap(errors.New("tmpcopyup is only valid for tmpfs"))
		}
		return nil, ErrNoPlan
	}
	// The parts of checkProcSys that do not look at the rootfs.
	underProc := isUnder(dest, "/proc")
	check := underProc || isUnder(dest, "/sys") || m.Type == "proc" || m.Type == "sysfs"
	procSource := false
	if underProc {
		switch {
		case dest == "/proc" && m.Type == "proc" && !bind:
		case dest == "/proc" && bind:
			procSource = true
		case dest == "/proc":
			return nil, wrap(errors.New("only a procfs may be mounted on /proc"))
		case procLxcfsPaths[dest]:
		default:
			return nil, wrap(fmt.Errorf("%s is inside /proc: only procfs emulation files (like /proc/cpuinfo) may be mounted there", dest))
		}
	}
	if m.Type == "cgroup" && !bind {
		return planCgroup(c, m, dest, opts, mounts, prefix, check)
	}
	s := mountStep(mountReq{source: m.Source, fstype: fstype, dest: dest, opts: opts, bind: bind}, prefix)
	s.CheckProcSys, s.NeedDir, s.ProcSource = check, m.Type == "proc" || m.Type == "sysfs", procSource
	return []Step{s}, nil
}

// mountStep is mountOne as a step.
func mountStep(q mountReq, prefix string) Step {
	flags := q.opts.Flags
	if q.fstype == "tmpfs" || q.dest == "/dev" {
		flags &^= unix.MS_RDONLY
	}
	s := Step{Op: StepMountIn, Source: q.source, FSType: q.fstype, Dest: q.dest, Data: q.opts.Data, Err: prefix,
		Flags: flags, Bind: q.bind, Propagation: q.opts.Propagation, RecAttr: q.opts.RecAttr}
	if q.fstype == "tmpfs" {
		s.KeepMode = !hasDataOption(q.opts.Data, "mode")
	}
	if q.bind && q.opts.Flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) != 0 {
		s.Remount = q.opts.Flags&^(unix.MS_REC|unix.MS_SILENT) | unix.MS_REMOUNT | unix.MS_BIND
	}
	return s
}

// planCgroup is mountCgroup as steps, for cgroup v1 only.
func planCgroup(c *Config, m specs.Mount, dest string, opts MountOptions, mounts []mountInfo, prefix string, check bool) ([]Step, error) {
	paths := c.CgroupPaths
	v1 := false
	for k := range paths {
		if k != "" {
			v1 = true
		}
	}
	if !v1 {
		return nil, ErrNoPlan
	}
	binds, links := cgroupV1Binds(paths, mounts)
	tmpfs := MountOptions{
		Flags:       unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC,
		Data:        "mode=755",
		Propagation: opts.Propagation,
	}
	s := mountStep(mountReq{source: "tmpfs", fstype: "tmpfs", dest: dest, opts: tmpfs}, prefix+": tmpfs for cgroup hierarchies")
	s.CheckProcSys, s.Cgroup = check, true
	steps := []Step{s}
	bopts := ParseMountOptions(cgroupBindOptions(m.Options))
	for _, b := range binds {
		sub := path.Join(dest, b.Name)
		steps = append(steps, mountStep(mountReq{source: b.Source, dest: sub, opts: bopts, bind: true}, fmt.Sprintf("%s: bind %s on %s", prefix, b.Source, sub)))
	}
	for _, l := range links {
		steps = append(steps, Step{Op: StepSymlinkIn, Dest: dest, Name: l.Name, Target: l.Target,
			Err: fmt.Sprintf("%s: symlink %s -> %s", prefix, path.Join(dest, l.Name), l.Target)})
	}
	return steps, nil
}

// PlanFinalize returns the steps Finalize would take, after the pivot.
func PlanFinalize(c *Config) ([]Step, error) {
	if c.SharedMountNS || c.UserNS || c.NoPivot {
		return nil, ErrNoPlan
	}
	var steps []Step
	if p := c.rootfsPropagation(); p != "" {
		flags, err := ParsePropagation(p)
		if err != nil {
			return nil, err
		}
		if flags&unix.MS_PRIVATE == 0 {
			steps = append(steps, Step{Op: StepMount, Dest: "/", Flags: flags, Err: "set propagation of / to " + p})
		}
	}
	for _, m := range c.Spec.Mounts {
		opts := ParseMountOptions(m.Options)
		dest := cleanDest(m.Destination)
		bind := m.Type == "bind" || opts.Flags&unix.MS_BIND != 0
		if opts.Flags&unix.MS_RDONLY == 0 || bind || (m.Type != "tmpfs" && dest != "/dev") {
			continue
		}
		flags := opts.Flags&^(unix.MS_REC|unix.MS_SILENT) | unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY
		steps = append(steps, Step{Op: StepRemount, Dest: dest, Flags: flags, RetryBusy: true,
			Err: fmt.Sprintf("mount %s (%s) on %s: read-only: remount with %s", m.Source, m.Type, m.Destination, flagNames(flags))})
	}
	if c.Spec.Root != nil && c.Spec.Root.Readonly {
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
		steps = append(steps, Step{Op: StepRemount, Dest: "/", Flags: flags, Err: "make root read-only: remount with " + flagNames(flags)})
	}
	if c.Spec.Linux == nil {
		return steps, nil
	}
	for _, p := range c.Spec.Linux.ReadonlyPaths {
		steps = append(steps, Step{Op: StepReadonly, Dest: p, Err: "readonly path " + p})
	}
	for _, p := range c.Spec.Linux.MaskedPaths {
		steps = append(steps, Step{Op: StepMask, Dest: p, Err: "masked path " + p})
	}
	return steps, nil
}
