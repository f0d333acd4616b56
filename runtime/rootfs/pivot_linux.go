package rootfs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Pivot makes c.Rootfs the root of the mount namespace and leaves the
// working directory at the new "/". With c.NoPivot the rootfs is moved
// over "/" and chroot(2)ed into instead of pivot_root(2).
func Pivot(c *Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.SharedMountNS {
		// The host's mount namespace: never move or pivot its root.
		if err := unix.Chroot(c.Rootfs); err != nil {
			return fmt.Errorf("chroot %s: %w", c.Rootfs, err)
		}
		return unix.Chdir("/")
	}
	if c.NoPivot {
		return moveRoot(c.Rootfs)
	}
	return pivotRoot(c.Rootfs)
}

// pivotRoot uses pivot_root(".", "."): the old root is stacked on top of
// the new one at "/", from where it is detached, so no directory for it is
// needed inside the rootfs.
func pivotRoot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new root %s: %w", rootfs, err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("chdir to new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	// The kernel leaves "." at the old root now, but it does not promise
	// so: go there explicitly.
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	// Make sure the unmount below cannot propagate to the host's mounts.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to new /: %w", err)
	}
	return nil
}

// moveRoot is the --no-pivot path: the rootfs mount is moved over "/" and
// chroot'ed into. The old root stays in the mount namespace below it, so
// first every full procfs and sysfs outside the rootfs is detached (or
// covered): the kernel allows mounting a new procfs/sysfs only when an
// unmasked one is visible, and the host's must not be the one that lets
// the container do so.
func moveRoot(rootfs string) error {
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.Root != "/" || (m.FSType != "proc" && m.FSType != "sysfs") || isUnder(m.Mountpoint, rootfs) {
			continue
		}
		err := unix.Mount("", m.Mountpoint, "", unix.MS_SLAVE|unix.MS_REC, "")
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			continue // already gone with a detached parent
		}
		if err != nil {
			return fmt.Errorf("make %s rslave: %w", m.Mountpoint, err)
		}
		err = unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
		if errors.Is(err, unix.EPERM) {
			// Locked by a user namespace: hide it instead.
			err = unix.Mount("tmpfs", m.Mountpoint, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		}
		if err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("hide host %s at %s: %w", m.FSType, m.Mountpoint, err)
		}
	}
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to %s: %w", rootfs, err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to new /: %w", err)
	}
	return nil
}
