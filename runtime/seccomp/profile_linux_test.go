package seccomp

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	mprofile "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// busyboxSyscalls are the calls a static busybox shell and its common
// applets (ls, cat, ps, cp, mkdir, sleep, wget, ...) make on x86_64.
var busyboxSyscalls = []string{
	"execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
	"mprotect", "getrandom", "uname", "readlink", "getuid", "getgid", "geteuid", "getegid",
	"getpid", "getppid", "gettid", "getcwd", "chdir", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
	"fork", "vfork", "wait4", "read", "write", "readv", "writev", "open", "openat", "close",
	"fstat", "newfstatat", "statx", "lstat", "stat", "lseek", "getdents64", "ioctl", "fcntl",
	"dup", "dup2", "dup3", "pipe", "pipe2", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
	"rename", "renameat2", "link", "symlink", "chmod", "fchmod", "fchmodat", "chown", "fchown",
	"fchownat", "lchown", "umask", "utimensat", "nanosleep", "clock_nanosleep", "clock_gettime",
	"gettimeofday", "sysinfo", "mmap", "munmap", "mremap", "madvise", "exit", "exit_group", "kill",
	"tgkill", "setpgid", "getpgid", "getpgrp", "setsid", "poll", "ppoll", "select", "pselect6",
	"connect", "sendto", "recvfrom", "sendmsg", "recvmsg", "getsockname", "setsockopt", "bind",
	"listen", "accept4", "sendfile", "copy_file_range", "statfs", "fstatfs", "sync", "fsync",
	"ftruncate", "truncate", "futex", "sched_yield", "setuid", "setgid", "setgroups", "setresuid",
	"setresgid", "getgroups", "times", "getrusage", "alarm", "pause", "access", "faccessat",
	"faccessat2", "mknodat", "capget", "capset", "prctl", "epoll_create1", "epoll_ctl", "epoll_wait",
}

// deniedByDocker are calls Docker's default profile refuses with EPERM for a
// container with the default capabilities.
var deniedByDocker = []string{
	"mount", "umount2", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
	"swapon", "swapoff", "acct", "settimeofday", "clock_settime", "sethostname", "setdomainname",
	"open_by_handle_at", "pivot_root", "iopl", "ioperm", "perf_event_open",
	"fsopen", "fsmount", "move_mount", "open_tree", "lookup_dcookie", "quotactl", "syslog",
	"userfaultfd", "vhangup", "nfsservctl", "uselib", "create_module", "get_kernel_syms",
}

func TestDefaultProfileDecisions(t *testing.T) {
	p := DefaultProfile()
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != uint(unix.EPERM) {
		t.Fatalf("default action %s %v", p.DefaultAction, p.DefaultErrnoRet)
	}
	if !slices.Equal(p.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v", p.Architectures)
	}
	v := mustCompile(t, p, amd64)
	eperm := retErrno(unix.EPERM)
	cases := []expectation{
		{"clone3 → ENOSYS so libc falls back to clone", x64(t, "clone3"), retErrno(unix.ENOSYS)},
		{"fork-style clone(SIGCHLD)", x64(t, "clone", uint64(unix.SIGCHLD)), retAllow},
		{"thread clone", x64(t, "clone", unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD|unix.CLONE_SYSVSEM|unix.CLONE_SETTLS|unix.CLONE_PARENT_SETTID|unix.CLONE_CHILD_CLEARTID), retAllow},
		{"clone(CLONE_NEWUSER)", x64(t, "clone", unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), eperm},
		{"clone(CLONE_NEWNS)", x64(t, "clone", unix.CLONE_NEWNS), eperm},
		{"unshare(CLONE_NEWUSER)", x64(t, "unshare", unix.CLONE_NEWUSER), eperm},
		{"ptrace on a kernel >= 4.8", x64(t, "ptrace"), retAllow},
		{"personality(PER_LINUX)", x64(t, "personality", 0), retAllow},
		{"personality query", x64(t, "personality", 0xffffffff), retAllow},
		{"personality(READ_IMPLIES_EXEC)", x64(t, "personality", 0x0400000), eperm},
		{"socket(AF_UNIX)", x64(t, "socket", unix.AF_UNIX), retAllow},
		{"socket(AF_INET)", x64(t, "socket", unix.AF_INET), retAllow},
		{"socket(AF_NETLINK)", x64(t, "socket", unix.AF_NETLINK), retAllow},
		{"socket(AF_ALG)", x64(t, "socket", unix.AF_ALG), eperm},
		{"socket(AF_VSOCK)", x64(t, "socket", unix.AF_VSOCK), eperm},
		{"chroot (CAP_SYS_CHROOT is a default capability)", x64(t, "chroot"), retAllow},
		{"a number past every syscall → ENOSYS", call{arch: unix.AUDIT_ARCH_X86_64, nr: 1000}, retErrno(unix.ENOSYS)},
	}
	for _, n := range busyboxSyscalls {
		cases = append(cases, expectation{"busybox needs " + n, x64(t, n), retAllow})
	}
	for _, n := range deniedByDocker {
		if _, ok := SyscallNumber(specs.ArchX86_64, n); ok {
			cases = append(cases, expectation{n + " denied", x64(t, n), eperm})
		}
	}
	check(t, v, cases)

	// The 32-bit ABIs of the same host are filtered too.
	x86 := func(name string, args ...uint64) call {
		c := call{arch: unix.AUDIT_ARCH_I386, nr: nr(t, specs.ArchX86, name)}
		copy(c.args[:], args)
		return c
	}
	check(t, v, []expectation{
		{"x86 mount", x86("mount"), eperm},
		{"x86 unshare", x86("unshare", unix.CLONE_NEWUSER), eperm},
		{"x86 read", x86("read"), retAllow},
		{"x86 socketcall", x86("socketcall", 1), retAllow},
		{"x86 clone3", x86("clone3"), retErrno(unix.ENOSYS)},
		{"x32 mount", call{arch: unix.AUDIT_ARCH_X86_64, nr: nr(t, specs.ArchX32, "mount")}, eperm},
		{"x32 read", call{arch: unix.AUDIT_ARCH_X86_64, nr: nr(t, specs.ArchX32, "read")}, retAllow},
		{"aarch64 on x86_64 killed", call{arch: unix.AUDIT_ARCH_AARCH64, nr: 63}, retKill},
	})
}

func TestDefaultProfileConditions(t *testing.T) {
	eperm := retErrno(unix.EPERM)
	// An old kernel: no ptrace (Docker: seccomp could be bypassed with it before 4.8).
	old := resolveProfile(mprofile.DefaultProfile(), DockerDefaultCapabilities, "amd64", kernel{4, 7})
	check(t, mustCompile(t, old, amd64), []expectation{
		{"ptrace on 4.7", x64(t, "ptrace"), eperm},
		{"process_vm_readv on 4.7", x64(t, "process_vm_readv"), eperm},
	})
	// CAP_SYS_ADMIN opens mount, unshare, clone3, namespaces in clone.
	admin := DefaultProfileFor(append(slices.Clone(DockerDefaultCapabilities), "CAP_SYS_ADMIN"))
	check(t, mustCompile(t, admin, amd64), []expectation{
		{"mount with CAP_SYS_ADMIN", x64(t, "mount"), retAllow},
		{"unshare with CAP_SYS_ADMIN", x64(t, "unshare", unix.CLONE_NEWUSER), retAllow},
		{"clone3 with CAP_SYS_ADMIN", x64(t, "clone3"), retAllow},
		{"clone(CLONE_NEWNS) with CAP_SYS_ADMIN", x64(t, "clone", unix.CLONE_NEWNS), retAllow},
		{"keyctl still denied", x64(t, "keyctl"), eperm},
		{"kexec_load still denied", x64(t, "kexec_load"), eperm},
	})
	// No capabilities at all: chroot is gone too.
	none := DefaultProfileFor(nil)
	check(t, mustCompile(t, none, amd64), []expectation{
		{"chroot without CAP_SYS_CHROOT", x64(t, "chroot"), eperm},
		{"read", x64(t, "read"), retAllow},
	})
	// arm64: arch-specific rules and archMap.
	a := resolveProfile(mprofile.DefaultProfile(), DockerDefaultCapabilities, "arm64", kernel{6, 1})
	if !slices.Equal(a.Architectures, []specs.Arch{specs.ArchAARCH64, specs.ArchARM}) {
		t.Errorf("arm64 architectures %v", a.Architectures)
	}
	v := mustCompile(t, a, hostARM64)
	check(t, v, []expectation{
		{"arm set_tls", call{arch: unix.AUDIT_ARCH_ARM, nr: nr(t, specs.ArchARM, "set_tls")}, retAllow},
		{"arm mount", call{arch: unix.AUDIT_ARCH_ARM, nr: nr(t, specs.ArchARM, "mount")}, eperm},
		{"aarch64 mount", call{arch: unix.AUDIT_ARCH_AARCH64, nr: nr(t, specs.ArchAARCH64, "mount")}, eperm},
		{"aarch64 openat", call{arch: unix.AUDIT_ARCH_AARCH64, nr: nr(t, specs.ArchAARCH64, "openat")}, retAllow},
	})
}

// TestDefaultProfileMatchesMoby checks the conversion against the module's
// own (Docker's) for the same capabilities on this host.
func TestDefaultProfileMatchesMoby(t *testing.T) {
	for _, caps := range [][]string{DockerDefaultCapabilities, append(slices.Clone(DockerDefaultCapabilities), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE")} {
		theirs, err := mprofile.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
		if err != nil {
			t.Fatal(err)
		}
		ours := DefaultProfileFor(caps)
		a, _ := json.Marshal(ours)
		b, _ := json.Marshal(theirs)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("caps %v: our conversion differs from moby's:\nours:   %s\ntheirs: %s", caps, a, b)
		}
	}
}

func TestDefaultProfileIsFresh(t *testing.T) {
	a := DefaultProfile()
	a.Syscalls[0].Names[0] = "changed"
	*a.DefaultErrnoRet = 99
	b := DefaultProfile()
	if b.Syscalls[0].Names[0] == "changed" || *b.DefaultErrnoRet == 99 {
		t.Fatal("DefaultProfile shares data between calls")
	}
}
