package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rootCtx is the state of one Prepare call.
type rootCtx struct {
	c    *Config
	root *os.File // O_PATH handle on the rootfs bind mount
}

// mountReq is one mount(2) to perform inside the root.
type mountReq struct {
	source string
	fstype string
	dest   string // clean, absolute, relative to the container's root
	opts   MountOptions
	bind   bool
	// srcFd, when set, is the bind source as a detached mount (see
	// Config.SourceFds), attached instead of binding source.
	srcFd *os.File
}

// procFdPath names the magic link through which the kernel reaches exactly
// the file f refers to, whatever happens to its path meanwhile.
func procFdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// mountEntry performs spec mount i, m.
func (r *rootCtx) mountEntry(i int, m specs.Mount) error {
	wrap := func(err error) error {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, m.Destination, err)
	}
	if m.Destination == "" {
		return wrap(errors.New("empty destination"))
	}
	dest := cleanDest(m.Destination)
	if dest == "/" {
		return wrap(errors.New("cannot mount over the container's root"))
	}
	if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
		return wrap(errors.New("idmapped mounts are not supported"))
	}
	opts := ParseMountOptions(m.Options)
	for _, d := range strings.Split(opts.Data, ",") {
		if d == "idmap" || d == "ridmap" || strings.HasPrefix(d, "idmap=") || strings.HasPrefix(d, "ridmap=") {
			return wrap(errors.New("idmapped mounts are not supported"))
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
		return wrap(errors.New("no filesystem type and not a bind mount"))
	}
	if opts.CopyUp && m.Type != "tmpfs" {
		return wrap(errors.New("tmpcopyup is only valid for tmpfs"))
	}
	if err := r.checkProcSys(dest, m.Type, bind, m.Source); err != nil {
		return wrap(err)
	}
	if m.Type == "cgroup" && !bind {
		if err := r.mountCgroup(m, dest, opts); err != nil {
			return wrap(err)
		}
		return nil
	}
	q := mountReq{source: m.Source, fstype: fstype, dest: dest, opts: opts, bind: bind}
	if fd, ok := r.c.SourceFds[i]; ok && bind {
		q.srcFd = os.NewFile(uintptr(fd), m.Source)
		defer q.srcFd.Close()
	}
	if err := r.mountOne(q); err != nil {
		return wrap(err)
	}
	return nil
}

// mountOne creates the destination inside the root, mounts onto it through
// an O_PATH handle, then applies the bind remount, tmpfs mode, propagation
// and recursive attributes to the new mount.
func (r *rootCtx) mountOne(q mountReq) error {
	wantDir := true
	if q.bind {
		fi, err := os.Stat(q.source)
		if q.srcFd != nil {
			fi, err = q.srcFd.Stat()
		}
		if err != nil {
			return fmt.Errorf("bind source: %w", err)
		}
		wantDir = fi.IsDir()
	}
	dst, existed, err := r.prepareDest(q.dest, wantDir)
	if err != nil {
		return err
	}
	defer dst.Close()

	var (
		origMode uint32
		setMode  bool
		copyFrom *os.File
	)
	if q.fstype == "tmpfs" {
		var st unix.Stat_t
		if err := unix.Fstat(int(dst.Fd()), &st); err != nil {
			return fmt.Errorf("stat destination: %w", err)
		}
		// Like runc: a tmpfs over an existing directory takes that
		// directory's mode unless the options set one.
		origMode = st.Mode & 0o7777
		setMode = (existed || q.opts.CopyUp) && !hasDataOption(q.opts.Data, "mode")
		if q.opts.CopyUp {
			// A directory fd opened before the mount still reads the
			// directory the tmpfs is about to cover.
			copyFrom, err = pathrs.Reopen(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
			if err != nil {
				return fmt.Errorf("open directory to copy up: %w", err)
			}
			defer copyFrom.Close()
		}
	}

	flags := q.opts.Flags
	if q.fstype == "tmpfs" || q.dest == "/dev" {
		// Files still have to be created in these; Finalize remounts
		// them read-only.
		flags &^= unix.MS_RDONLY
	}
	if q.srcFd != nil {
		err = unix.MoveMount(int(q.srcFd.Fd()), "", int(dst.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	} else {
		err = unix.Mount(q.source, procFdPath(dst), q.fstype, flags, q.opts.Data)
	}
	if err != nil && q.fstype == "sysfs" && r.c.UserNS && errors.Is(err, unix.EPERM) {
		// Without its own network namespace a user namespace may not
		// mount sysfs; give it the host's, read-only if asked.
		// The host's /sys has submounts (cgroups, tracefs...): a
		// read-only request has to cover them too.
		q.bind, q.source, q.fstype = true, "/sys", ""
		if q.opts.Flags&unix.MS_RDONLY != 0 {
			attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
			if q.opts.RecAttr != nil {
				attr = *q.opts.RecAttr
				attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
				attr.Attr_clr &^= unix.MOUNT_ATTR_RDONLY
			}
			q.opts.RecAttr = &attr
		}
		err = unix.Mount("/sys", procFdPath(dst), "", unix.MS_BIND|unix.MS_REC, "")
	}
	if err != nil {
		return err
	}

	mnt, err := r.openMountRoot(q.dest)
	if err != nil {
		return err
	}
	defer mnt.Close()

	if q.bind && q.opts.Flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) != 0 {
		// A bind mount ignores every flag but MS_REC; they take effect
		// with a remount of the new mount.
		want := q.opts.Flags&^(unix.MS_REC|unix.MS_SILENT) | unix.MS_REMOUNT | unix.MS_BIND
		if err := remountKeepingLocks(mnt, procFdPath(mnt), want, q.opts.Cleared); err != nil {
			return err
		}
	}
	if copyFrom != nil {
		to, err := pathrs.Reopen(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("open tmpfs to copy up: %w", err)
		}
		err = copyTree(copyFrom, to)
		to.Close()
		if err != nil {
			return fmt.Errorf("copy up: %w", err)
		}
	}
	if setMode {
		if err := unix.Chmod(procFdPath(mnt), origMode); err != nil {
			return fmt.Errorf("chmod tmpfs to %#o: %w", origMode, err)
		}
	}
	for _, p := range q.opts.Propagation {
		if err := unix.Mount("", procFdPath(mnt), "", p, ""); err != nil {
			return fmt.Errorf("set propagation %s: %w", propagationName(p), err)
		}
	}
	if q.opts.RecAttr != nil {
		if err := mountSetattr(mnt, q.opts.RecAttr); err != nil {
			return err
		}
	}
	return nil
}

// mountSetattr applies recursive mount attributes to the tree at f.
func mountSetattr(f *os.File, attr *unix.MountAttr) error {
	err := unix.MountSetattr(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr)
	if errors.Is(err, unix.ENOSYS) {
		return errors.New("recursive mount options (rro, rnosuid, ...) need mount_setattr(2), Linux 5.12 or later")
	}
	if err != nil {
		return fmt.Errorf("mount_setattr (recursive options): %w", err)
	}
	return nil
}

// remountKeepingLocks remounts with flags; if the kernel says EPERM, the
// mount probably has flags locked by a user namespace, so it retries with
// the mount's current lockable flags kept. f (may be nil) or path names the
// mount for statfs.
func remountKeepingLocks(f *os.File, path string, flags, cleared uintptr) error {
	err := unix.Mount("", path, "", flags, "")
	if err == nil || !errors.Is(err, unix.EPERM) {
		if err != nil {
			return fmt.Errorf("remount with %s: %w", flagNames(flags), err)
		}
		return nil
	}
	var st unix.Statfs_t
	if f != nil {
		err = unix.Fstatfs(int(f.Fd()), &st)
	} else {
		err = unix.Statfs(path, &st)
	}
	if err != nil {
		return fmt.Errorf("statfs for remount: %w", err)
	}
	kept, kerr := keepLockedFlags(flags, cleared, statfsToMountFlags(st.Flags))
	if kerr != nil {
		return fmt.Errorf("remount with %s: %w (%w)", flagNames(flags), unix.EPERM, kerr)
	}
	if err := unix.Mount("", path, "", kept, ""); err != nil {
		return fmt.Errorf("remount with %s (keeping locked flags): %w", flagNames(kept), err)
	}
	return nil
}

// resolve returns the container path that dest names once its symlinks are
// followed inside the root (an absolute link is relative to the root, ".."
// stops at the root), the way the container will see it.
func (r *rootCtx) resolve(dest string) (string, error) {
	full, err := securejoin.SecureJoin(r.c.Rootfs, dest)
	if err != nil {
		return "", fmt.Errorf("resolve %s in rootfs: %w", dest, err)
	}
	rel, err := filepath.Rel(r.c.Rootfs, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("resolve %s in rootfs: %s is outside it", dest, full)
	}
	return cleanDest(rel), nil
}

// prepareDest returns an O_PATH handle on the mount destination, creating it
// inside the root if missing: a directory, or an empty file when dir is
// false. Every lookup is confined to the root (openat2 RESOLVE_IN_ROOT or
// an equivalent checked walk), so no symlink can lead it out.
func (r *rootCtx) prepareDest(dest string, dir bool) (_ *os.File, existed bool, _ error) {
	path, err := r.resolve(dest)
	if err != nil {
		return nil, false, err
	}
	if path == "/" {
		return nil, false, fmt.Errorf("destination %s resolves to the container's root", dest)
	}
	if f, err := pathrs.OpenatInRoot(r.root, path); err == nil {
		return f, true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("open destination %s: %w", path, err)
	}
	if dir {
		f, err := pathrs.MkdirAllHandle(r.root, path, 0o755)
		if err != nil {
			return nil, false, fmt.Errorf("create destination %s: %w", path, err)
		}
		return f, false, nil
	}
	parent, err := pathrs.MkdirAllHandle(r.root, filepath.Dir(path), 0o755)
	if err != nil {
		return nil, false, fmt.Errorf("create parent of destination %s: %w", path, err)
	}
	defer parent.Close()
	f, err := createFileAt(parent, filepath.Base(path), 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("create destination %s: %w", path, err)
	}
	return f, false, nil
}

// createFileAt creates an empty regular file name in dir (keeping an
// existing one) and returns an O_PATH handle on it, refusing a symlink.
func createFileAt(dir *os.File, name string, mode uint32) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, mode)
	if err == nil {
		unix.Close(fd)
	} else if !errors.Is(err, unix.EEXIST) {
		return nil, err
	}
	fd, err = unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		f.Close()
		return nil, fmt.Errorf("%s appeared as a symlink: refusing to mount on it", name)
	}
	return f, nil
}

// openMountRoot reopens dest after a mount and checks that it now is the
// root of a mount: if the path was swapped under us, the new mount is not
// where the path leads and the check fails.
func (r *rootCtx) openMountRoot(dest string) (*os.File, error) {
	path, err := r.resolve(dest)
	if err != nil {
		return nil, err
	}
	f, err := pathrs.OpenatInRoot(r.root, path)
	if err != nil {
		return nil, fmt.Errorf("reopen %s after mount: %w", path, err)
	}
	ok, err := isMountRoot(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if !ok {
		f.Close()
		return nil, fmt.Errorf("%s is not a mount point after mounting on it: path changed during mount", path)
	}
	return f, nil
}

func isMountRoot(f *os.File) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err != nil {
		return false, fmt.Errorf("statx: %w", err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return true, nil // kernel too old to tell (before 5.8): trust the confined lookup
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

// procLxcfsPaths are the only destinations under /proc a mount may have
// (besides /proc itself): files that lxcfs-style tools emulate, plus the
// one CRIU needs. Anything else could hide or fake what /proc tells the
// container about its confinement.
var procLxcfsPaths = map[string]bool{
	"/proc/cpuinfo":                true,
	"/proc/diskstats":              true,
	"/proc/meminfo":                true,
	"/proc/stat":                   true,
	"/proc/swaps":                  true,
	"/proc/uptime":                 true,
	"/proc/loadavg":                true,
	"/proc/slabinfo":               true,
	"/proc/net/dev":                true,
	"/proc/sys/kernel/ns_last_pid": true,
}

// checkProcSys guards mounts on or under /proc and /sys: no component of the
// destination may be a symlink (a container image could otherwise point
// /proc at a directory of its choosing and have the real procfs land
// there), proc and sysfs need a directory, /proc only takes a procfs, and
// nothing but a few emulated files may be mounted inside /proc.
func (r *rootCtx) checkProcSys(dest, fstype string, bind bool, source string) error {
	underProc := isUnder(dest, "/proc")
	underSys := isUnder(dest, "/sys")
	if !underProc && !underSys && fstype != "proc" && fstype != "sysfs" {
		return nil
	}
	cur := r.c.Rootfs
	comps := strings.Split(strings.TrimPrefix(dest, "/"), "/")
	for i, comp := range comps {
		cur = filepath.Join(cur, comp)
		fi, err := os.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
		shown := "/" + strings.Join(comps[:i+1], "/")
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(cur)
			return fmt.Errorf("%s in the rootfs is a symlink (to %q): refusing to mount %s through it", shown, target, dest)
		}
		last := i == len(comps)-1
		if !fi.IsDir() && (!last || fstype == "proc" || fstype == "sysfs") {
			return fmt.Errorf("%s in the rootfs is not a directory: %s must be mounted on an ordinary directory", shown, fstypeOr(fstype, "bind"))
		}
	}
	if !underProc {
		return nil
	}
	if dest == "/proc" {
		if fstype == "proc" && !bind {
			return nil
		}
		if bind {
			var st unix.Statfs_t
			if err := unix.Statfs(source, &st); err == nil && st.Type == unix.PROC_SUPER_MAGIC {
				return nil
			}
		}
		return errors.New("only a procfs may be mounted on /proc")
	}
	if procLxcfsPaths[dest] {
		return nil
	}
	return fmt.Errorf("%s is inside /proc: only procfs emulation files (like /proc/cpuinfo) may be mounted there", dest)
}

func fstypeOr(t, def string) string {
	if t == "" {
		return def
	}
	return t
}

// hasDataOption reports whether the data string has key=... among its
// comma-separated options.
func hasDataOption(data, key string) bool {
	for _, o := range strings.Split(data, ",") {
		if o == key || strings.HasPrefix(o, key+"=") {
			return true
		}
	}
	return false
}
