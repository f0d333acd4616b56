package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config is what the container's init process knows about the root
// filesystem it has to build.
type Config struct {
	// Rootfs is the absolute host path of the bundle's root filesystem,
	// symlinks already evaluated.
	Rootfs string
	// Spec supplies Mounts, Root.Readonly, Linux.RootfsPropagation,
	// Linux.Devices, Linux.MaskedPaths and Linux.ReadonlyPaths.
	// Linux.MountLabel is ignored (no SELinux support).
	Spec *specs.Spec
	// NoPivot switches root with MS_MOVE and chroot(2) instead of
	// pivot_root(2) (runc's --no-pivot, for roots on ramfs).
	NoPivot bool
	// UserNS says the container has its own user namespace: device nodes
	// are bind-mounted from the host instead of created with mknod(2), and
	// a sysfs mount the kernel refuses falls back to a bind of /sys.
	UserNS bool
	// SourceFds maps the index of a bind mount in Spec.Mounts to a
	// descriptor of a detached copy of its source (open_tree with
	// OPEN_TREE_CLONE), made by the runtime on the host. The init
	// attaches it with move_mount: a container's root in a user namespace
	// may not be able to reach the source by its path (a directory only
	// host root may search).
	SourceFds map[int]int
	// CgroupPaths gives the container's cgroup directories on the host, for
	// "cgroup" mounts. On cgroup v1 the key is a controller ("memory",
	// "cpu", "name=systemd"); the key "" is the cgroup v2 (unified)
	// directory. When empty, they are read from /proc/self/cgroup, which
	// is right as long as the caller already sits in the container's
	// cgroups and has not yet unshared its cgroup namespace.
	CgroupPaths map[string]string
	// CgroupNS says the container has its own cgroup namespace: a cgroup v2
	// mount is then a fresh cgroup2 filesystem instead of a bind mount.
	CgroupNS bool
	// SharedMountNS says the container has no mount namespace of its own
	// (the config lists none): the mounts are made in the caller's
	// namespace under Rootfs, as runc does, nothing changes the
	// propagation of the host's mounts, Pivot only chroots, and the
	// runtime unmounts everything under Rootfs when the container is
	// deleted.
	SharedMountNS bool
}

func (c *Config) validate() error {
	if c == nil || c.Spec == nil {
		return errors.New("rootfs: no spec")
	}
	if !filepath.IsAbs(c.Rootfs) || filepath.Clean(c.Rootfs) == "/" {
		return fmt.Errorf("rootfs %q: must be an absolute path other than /", c.Rootfs)
	}
	if filepath.Clean(c.Rootfs) != c.Rootfs {
		return fmt.Errorf("rootfs %q: must be a clean path", c.Rootfs)
	}
	fi, err := os.Stat(c.Rootfs)
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("rootfs %s: not a directory", c.Rootfs)
	}
	return nil
}

func (c *Config) rootfsPropagation() string {
	if c.Spec.Linux == nil {
		return ""
	}
	return c.Spec.Linux.RootfsPropagation
}

// Prepare builds the container's root filesystem under c.Rootfs, before the
// root is switched: it sets the propagation of "/", makes c.Rootfs a mount
// point, performs every spec mount in order, and (unless /dev is a bind
// mount) creates the device nodes and the /dev symlinks.
func Prepare(c *Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	prop, err := ParsePropagation(c.rootfsPropagation())
	if err != nil {
		return err
	}
	// Keep whatever happens below from propagating to the host: by default
	// every mount becomes a slave of the host's. Not when the container
	// shares the host's mount namespace: then "/" is the host's own.
	if !c.SharedMountNS {
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("set propagation of / (%s): %w", propagationName(prop), err)
		}
	}
	if !c.SharedMountNS {
		if err := makeParentPrivate(c.Rootfs); err != nil {
			return err
		}
	}
	if err := unix.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s onto itself: %w", c.Rootfs, err)
	}
	if err := checkProcfs("/proc"); err != nil {
		return fmt.Errorf("host /proc is needed to mount through file descriptors: %w", err)
	}
	// Opened only now, so that the handle is on the new bind mount and every
	// mount made through it lands in the tree that becomes "/".
	root, err := os.OpenFile(c.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	r := &rootCtx{c: c, root: root}
	for i, m := range c.Spec.Mounts {
		if err := r.mountEntry(i, m); err != nil {
			return err
		}
	}
	if !devIsBind(c.Spec.Mounts) {
		if err := r.createDevices(); err != nil {
			return err
		}
		if err := r.setupDevSymlinks(); err != nil {
			return err
		}
	}
	return nil
}

// makeParentPrivate makes the mount containing dir private if it is shared:
// pivot_root(2) refuses a shared parent, and the bind of the rootfs onto
// itself would otherwise propagate to the parent's peers.
func makeParentPrivate(dir string) error {
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	parent, ok := mountFor(mounts, dir)
	if !ok || !parent.shared() {
		return nil
	}
	if err := unix.Mount("", parent.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make parent mount %s of rootfs private: %w", parent.Mountpoint, err)
	}
	return nil
}

// checkProcfs makes sure path is the root of a procfs, since the package
// mounts onto /proc/self/fd/N magic links.
func checkProcfs(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not a procfs (magic %#x)", path, st.Type)
	}
	return nil
}

// devIsBind reports whether the spec bind-mounts something onto /dev; then
// the runtime leaves /dev alone, as runc does.
func devIsBind(mounts []specs.Mount) bool {
	for _, m := range mounts {
		if cleanDest(m.Destination) != "/dev" {
			continue
		}
		if m.Type == "bind" || ParseMountOptions(m.Options).Flags&unix.MS_BIND != 0 {
			return true
		}
	}
	return false
}

// cleanDest makes a mount destination absolute and clean. Relative
// destinations are taken relative to the container's root, as runc does.
func cleanDest(dest string) string {
	return filepath.Clean("/" + dest)
}

func propagationName(p uintptr) string {
	for name, v := range propagationOptions {
		if v == p {
			return name
		}
	}
	return fmt.Sprintf("%#x", p)
}
