// Package idmap makes user namespaces and id-mapped mounts: the kernel
// pieces that let a container's root be an unprivileged host user while
// its image files still belong to it.
package idmap

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// forkPaused clones a child into a new user namespace that does nothing
// but wait to be killed. The child runs no Go code that could need the
// runtime (no stack growth, no allocation): only raw system calls.
//
//go:norace
//go:nosplit
func forkPaused() (uintptr, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(unix.CLONE_NEWUSER|unix.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 || pid != 0 {
		return pid, errno
	}
	for {
		syscall.RawSyscall(unix.SYS_PAUSE, 0, 0, 0)
	}
}

// UsernsFD returns a descriptor of a new user namespace with the given
// mappings (host IDs as the kernel sees them from the caller's
// namespace), for mount_setattr(MOUNT_ATTR_IDMAP). No process lives in
// the namespace once this returns.
func UsernsFD(uids, gids []specs.LinuxIDMapping) (*os.File, error) {
	if len(uids) == 0 || len(gids) == 0 {
		return nil, fmt.Errorf("user namespace: both uid and gid mappings are needed")
	}
	syscall.ForkLock.Lock()
	pid, errno := forkPaused()
	syscall.ForkLock.Unlock()
	if errno != 0 {
		return nil, fmt.Errorf("clone a user namespace: %w", errno)
	}
	defer func() {
		unix.Kill(int(pid), unix.SIGKILL)
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
	}()
	dir := "/proc/" + strconv.Itoa(int(pid))
	if err := os.WriteFile(dir+"/uid_map", []byte(Format(uids)), 0); err != nil {
		return nil, fmt.Errorf("write uid map: %w", err)
	}
	if err := os.WriteFile(dir+"/gid_map", []byte(Format(gids)), 0); err != nil {
		return nil, fmt.Errorf("write gid map: %w", err)
	}
	f, err := os.Open(dir + "/ns/user")
	if err != nil {
		return nil, fmt.Errorf("open user namespace: %w", err)
	}
	return f, nil
}

// Format renders mappings as /proc/PID/uid_map takes them.
func Format(ms []specs.LinuxIDMapping) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
	}
	return b.String()
}

// Clone returns a detached, id-mapped copy of the mount at path (and
// those below it when recursive). Through it a file stored with ID n
// shows as the host ID userns maps n to, and a host ID written through
// it is stored as the namespace's ID for it; an ID the namespace does
// not map cannot be written (EOVERFLOW).
func Clone(path string, userns *os.File, recursive bool) (*os.File, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, uint(flags))
	if err != nil {
		return nil, fmt.Errorf("open_tree %s: %w", path, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	setFlags := uint(0)
	if recursive {
		setFlags = unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|setFlags, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("id-map %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}
