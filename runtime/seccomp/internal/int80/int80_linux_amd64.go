package int80

// Syscall makes ia32 system call nr with up to three arguments and returns
// the kernel's result: a value, or -errno.
func Syscall(nr, a1, a2, a3 uint32) int32 {
	return int32(syscall(uintptr(nr), uintptr(a1), uintptr(a2), uintptr(a3)))
}

func syscall(nr, a1, a2, a3 uintptr) uintptr
