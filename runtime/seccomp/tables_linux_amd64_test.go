package seccomp

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestTablesMatchXSys cross-checks x86_64 numbers with golang.org/x/sys.
func TestTablesMatchXSys(t *testing.T) {
	for name, want := range map[string]uintptr{
		"read": unix.SYS_READ, "mkdir": unix.SYS_MKDIR, "mkdirat": unix.SYS_MKDIRAT,
		"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "unshare": unix.SYS_UNSHARE,
		"clone": unix.SYS_CLONE, "clone3": unix.SYS_CLONE3, "keyctl": unix.SYS_KEYCTL,
		"bpf": unix.SYS_BPF, "kexec_load": unix.SYS_KEXEC_LOAD, "init_module": unix.SYS_INIT_MODULE,
		"reboot": unix.SYS_REBOOT, "ptrace": unix.SYS_PTRACE, "personality": unix.SYS_PERSONALITY,
		"socket": unix.SYS_SOCKET, "openat2": unix.SYS_OPENAT2, "futex_waitv": unix.SYS_FUTEX_WAITV,
		"arch_prctl": unix.SYS_ARCH_PRCTL, "seccomp": unix.SYS_SECCOMP,
	} {
		if got, ok := SyscallNumber(specs.ArchX86_64, name); !ok || uintptr(got) != want {
			t.Errorf("%s: tables %d (%v), x/sys %d", name, got, ok, want)
		}
	}
}
