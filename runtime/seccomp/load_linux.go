package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs the program on the calling thread with
// seccomp(SECCOMP_SET_MODE_FILTER, Flags, ...). The caller has locked its
// goroutine to the thread, has set no_new_privs or holds CAP_SYS_ADMIN, and
// execs from this same thread.
func (p *Program) Load() error {
	if len(p.Filter) == 0 || len(p.Filter) > maxInsns {
		return fmt.Errorf("load seccomp filter: %d instructions (1..%d)", len(p.Filter), maxInsns)
	}
	prog := unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(p.Flags), uintptr(unsafe.Pointer(&prog)))
	if errno == unix.ENOSYS && p.Flags == 0 {
		// Kernels before 3.17 have only the prctl interface.
		_, _, errno = unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)))
	}
	runtime.KeepAlive(p.Filter)
	switch {
	case errno == 0:
		return nil
	case errno == unix.EACCES:
		return fmt.Errorf("load seccomp filter: %w (the thread needs no_new_privs or CAP_SYS_ADMIN)", errno)
	case errno == unix.EINVAL && p.Flags != 0:
		return fmt.Errorf("load seccomp filter with flags %#x: %w (the kernel may not support these flags)", p.Flags, errno)
	default:
		return fmt.Errorf("load seccomp filter: %w", errno)
	}
}

// flagSupported reports whether the kernel accepts a seccomp filter flag:
// seccomp(SECCOMP_SET_MODE_FILTER, flag, NULL) fails with EFAULT when it
// does and EINVAL when it does not, without installing anything.
func flagSupported(flag uint) bool {
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flag), 0)
	return errors.Is(errno, unix.EFAULT)
}
