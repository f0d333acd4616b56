package main

import "syscall"

// System call numbers, from the generic table arm64 uses.
const (
	sysKcmp     = 272
	sysExecve   = 221
	sysExecveat = 281
)

// syscallNumber returns the system call a tracee stopped in (register x8).
func syscallNumber(tid int) (uint64, error) {
	var regs syscall.PtraceRegs
	if err := syscall.PtraceGetRegs(tid, &regs); err != nil {
		return 0, err
	}
	return regs.Regs[8], nil
}

func isExecve(nr uint64) bool { return nr == sysExecve || nr == sysExecveat }
