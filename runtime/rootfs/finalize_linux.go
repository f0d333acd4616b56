package rootfs

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Finalize runs after Pivot, with "/" the container's root. In order (the
// order runc uses): it applies a non-private rootfsPropagation to "/",
// remounts read-only the tmpfs and /dev mounts that Prepare kept writable,
// remounts "/" read-only for root.readonly, then makes Linux.ReadonlyPaths
// read-only and masks Linux.MaskedPaths. Paths that do not exist are
// skipped.
func Finalize(c *Config) error {
	if c == nil || c.Spec == nil {
		return errors.New("rootfs: no spec")
	}
	if p := c.rootfsPropagation(); p != "" && !c.SharedMountNS {
		flags, err := ParsePropagation(p)
		if err != nil {
			return err
		}
		// Private was already in force since Prepare; anything else has to
		// be set on the new "/" itself (setting it on the host's "/" before
		// the pivot would have been wrong for shared).
		if flags&unix.MS_PRIVATE == 0 {
			if err := unix.Mount("", "/", "", flags, ""); err != nil {
				return fmt.Errorf("set propagation of / to %s: %w", p, err)
			}
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
		if err := remountRetryBusy(dest, flags, opts.Cleared); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: read-only: %w", m.Source, m.Type, m.Destination, err)
		}
	}
	if c.Spec.Root != nil && c.Spec.Root.Readonly {
		if err := remountKeepingLocks(nil, "/", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, 0); err != nil {
			return fmt.Errorf("make root read-only: %w", err)
		}
	}
	if c.Spec.Linux == nil {
		return nil
	}
	for _, p := range c.Spec.Linux.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return fmt.Errorf("readonly path %s: %w", p, err)
		}
	}
	if len(c.Spec.Linux.MaskedPaths) > 0 {
		null, err := openDevNull()
		if err != nil {
			return fmt.Errorf("masked paths: %w", err)
		}
		defer null.Close()
		for _, p := range c.Spec.Linux.MaskedPaths {
			if err := maskPath(p, null); err != nil {
				return fmt.Errorf("masked path %s: %w", p, err)
			}
		}
	}
	return nil
}

// remountRetryBusy remounts read-only, retrying briefly while the kernel
// reports writers on the mount (EBUSY).
func remountRetryBusy(path string, flags, cleared uintptr) error {
	var err error
	for i := 0; i < 5; i++ {
		err = remountKeepingLocks(nil, path, flags, cleared)
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// readonlyPath bind-mounts path onto itself (recursively) and remounts the
// bind read-only, keeping its nosuid, nodev and noexec.
func readonlyPath(path string) error {
	if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("bind onto itself: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	keep := statfsToMountFlags(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	return remountKeepingLocks(nil, path, keep|unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, 0)
}

// openDevNull opens the container's /dev/null as an O_PATH handle and
// checks that it is the real null device: masking with whatever file an
// image put there would expose that file instead of hiding anything.
func openDevNull() (*os.File, error) {
	fd, err := unix.Open("/dev/null", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/null: %w", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/null")
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		f.Close()
		return nil, fmt.Errorf("/dev/null is not the null device (mode %#o, device %d:%d)", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return f, nil
}

// maskPath hides path: a file gets /dev/null bind-mounted over it, a
// directory an empty read-only tmpfs.
func maskPath(path string, null *os.File) error {
	src := "/dev/null"
	if checkProcfs("/proc") == nil {
		// Through the checked handle, so a /dev/null swapped after the
		// check is not what gets mounted.
		src = procFdPath(null)
	}
	err := unix.Mount(src, path, "", unix.MS_BIND, "")
	if errors.Is(err, unix.ENOTDIR) {
		err = unix.Mount("tmpfs", path, "tmpfs", unix.MS_RDONLY, "")
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}
