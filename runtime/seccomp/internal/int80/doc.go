// Package int80 lets tests of the seccomp package make 32-bit x86 (ia32)
// system calls from a 64-bit process, through the int $0x80 gate, so that
// the kernel runs a filter's x86 section (AUDIT_ARCH_I386) for real. Only
// arguments that fit 32 bits can be passed: no pointers to Go memory.
package int80
