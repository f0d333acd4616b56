// Package rootfs builds a container's root filesystem from an OCI runtime
// spec (v1.2), the way runc does, inside the new mount namespace of the
// container's init process.
//
// # What it owns
//
// Everything between "init is in a fresh mount namespace" and "the
// container's / is ready": root propagation, the spec's mounts (bind,
// rbind, tmpfs, proc, sysfs, devpts, mqueue, cgroup v1 and v2, overlay and
// any other filesystem), device nodes and /dev symlinks, the switch of root
// (pivot_root or MS_MOVE+chroot), and the final touches: read-only tmpfs
// and /dev, root.readonly, readonlyPaths, maskedPaths and a shared rootfs
// propagation. It does not create namespaces, cgroups or the console
// (/dev/console is the console package's job), runs no hooks and applies
// no SELinux labels. It imports no other berth package; it is used by the
// runtime's init process only.
//
// # Order of operations
//
// The init process calls, in this order:
//
//  1. Prepare: set the propagation of "/" (rslave unless
//     linux.rootfsPropagation says otherwise) so nothing below reaches the
//     host; make the parent mount of the rootfs private if it is shared;
//     bind the rootfs onto itself (MS_REC) so it is a mount point; mount
//     every spec mount in order; unless /dev is a bind mount, create the
//     default and spec devices and the /dev symlinks (fd, stdin, stdout,
//     stderr, core, ptmx -> pts/ptmx).
//  2. Pivot: pivot_root(".", ".") from inside the rootfs, then make the old
//     root rslave and detach it; or with NoPivot, detach the host's procfs
//     and sysfs mounts, move the rootfs over "/" and chroot into it.
//  3. Finalize: apply a non-private rootfsPropagation to the new "/";
//     remount read-only the tmpfs and /dev mounts that asked for "ro" (kept
//     writable until now so devices and mount points could be created in
//     them); remount "/" read-only for root.readonly; make readonlyPaths
//     read-only; mask maskedPaths.
//
// PlanPrepare and PlanFinalize express the same work as a list of Steps
// for an executor that runs without the Go runtime (the runtime's C init):
// the decisions (options, order, cgroup v1 hierarchies, devices, links) are
// made here, while every lookup in the rootfs is left to the executor at
// the moment it acts, confined the same way (see Safety). What they do not
// express (user namespaces, a shared mount namespace, --no-pivot,
// tmpcopyup, cgroup v2 mounts) makes them return ErrNoPlan.
//
// Each spec mount is performed as: parse the options (ParseMountOptions:
// flags, propagation, mount_setattr attributes, filesystem data); create
// the destination inside the root; mount(2) onto it; for a bind with flags,
// remount MS_REMOUNT|MS_BIND with them (keeping the flags the kernel locked
// on the source if the first attempt gets EPERM, as in a user namespace);
// set a tmpfs's mode to that of the directory it covers unless mode= is
// given; apply each propagation option with its own mount(2) call; apply
// recursive options (rro, rnosuid, ...) with mount_setattr(AT_RECURSIVE).
// Errors name the mount: "mount SRC (TYPE) on DEST: ...".
//
// # Safety
//
// The rootfs comes from an image and may hold hostile symlinks (evil ->
// /etc), and the kernel follows symlinks in mount(2) targets. So a
// destination is first resolved inside the rootfs with securejoin (an
// absolute link is taken relative to the rootfs, ".." stops at its root),
// then created and opened with filepath-securejoin's pathrs-lite, whose
// lookups are confined to a handle on the rootfs (openat2 RESOLVE_IN_ROOT
// or a checked walk). The mount is made onto /proc/self/fd/N of that O_PATH
// handle, so the kernel mounts on exactly the inode that was checked even
// if the path is swapped afterwards; the destination is then reopened and
// must be a mount root (statx STATX_ATTR_MOUNT_ROOT), which catches such a
// swap. Devices and /dev symlinks are created with *at calls relative to
// such handles. Destinations on or under /proc and /sys are walked
// component by component and refused if any component is a symlink, proc
// and sysfs need a real directory, /proc takes only a procfs, and inside
// /proc only lxcfs-style files (/proc/cpuinfo, /proc/meminfo, ...) may be
// mounted over. Masking binds the container's /dev/null only after checking
// it is the character device 1:3. After Pivot the container's root is "/",
// so a symlink can no longer lead out of it, and Finalize works on plain
// paths.
//
// Callers must run Prepare with the host's procfs at /proc (it is used for
// the /proc/self/fd magic links) and from a process whose every thread is
// in the new mount namespace (unshare it before the Go runtime starts, or
// in a process created with CLONE_NEWNS). A relative bind source is taken
// relative to the working directory. Idmapped mounts are not supported and
// are refused.
package rootfs
