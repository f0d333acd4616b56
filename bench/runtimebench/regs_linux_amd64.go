package main

import "syscall"

// System call numbers the stdlib syscall package lacks on amd64.
const (
	sysKcmp     = 312
	sysExecveat = 322
)

// syscallNumber returns the system call a tracee stopped in.
func syscallNumber(tid int) (uint64, error) {
	var regs syscall.PtraceRegs
	if err := syscall.PtraceGetRegs(tid, &regs); err != nil {
		return 0, err
	}
	return regs.Orig_rax, nil
}

func isExecve(nr uint64) bool { return nr == syscall.SYS_EXECVE || nr == sysExecveat }
