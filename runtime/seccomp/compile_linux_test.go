package seccomp

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var amd64 = hostAMD64

func mustCompile(t testing.TB, s *specs.LinuxSeccomp, h *host) *vm {
	t.Helper()
	p, err := compile(s, h)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return newVM(t, p)
}

// expect checks the decision for calls on x86_64 (or another arch).
type expectation struct {
	what string
	c    call
	want uint32
}

func check(t *testing.T, v *vm, cases []expectation) {
	t.Helper()
	for _, e := range cases {
		if got := v.run(e.c); got != e.want {
			t.Errorf("%s: got %s, want %s", e.what, describe(got), describe(e.want))
		}
	}
}

func x64(t testing.TB, name string, args ...uint64) call {
	c := call{arch: unix.AUDIT_ARCH_X86_64, nr: nr(t, specs.ArchX86_64, name)}
	copy(c.args[:], args)
	return c
}

func TestActionsAndErrno(t *testing.T) {
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, // defaultErrnoRet unset: EPERM
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "exit_group"}, Action: specs.ActAllow},
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.ENOSYS))},
			{Names: []string{"rmdir"}, Action: specs.ActErrno},
			{Names: []string{"kill"}, Action: specs.ActKillProcess},
			{Names: []string{"tkill"}, Action: specs.ActKill},
			{Names: []string{"tgkill"}, Action: specs.ActKillThread},
			{Names: []string{"getpid"}, Action: specs.ActTrap},
			{Names: []string{"getppid"}, Action: specs.ActTrace, ErrnoRet: uintp(7)},
			{Names: []string{"gettid"}, Action: specs.ActTrace},
			{Names: []string{"getuid"}, Action: specs.ActLog},
			{Names: []string{"no_such_syscall_berth", "getgid"}, Action: specs.ActAllow},
		},
	}
	v := mustCompile(t, s, amd64)
	check(t, v, []expectation{
		{"read allowed", x64(t, "read"), retAllow},
		{"write allowed", x64(t, "write"), retAllow},
		{"mkdir errnoRet ENOSYS", x64(t, "mkdir"), retErrno(unix.ENOSYS)},
		{"rmdir ERRNO defaults to EPERM", x64(t, "rmdir"), retErrno(unix.EPERM)},
		{"kill KILL_PROCESS", x64(t, "kill"), unix.SECCOMP_RET_KILL_PROCESS},
		{"tkill KILL is KILL_THREAD", x64(t, "tkill"), unix.SECCOMP_RET_KILL_THREAD},
		{"tgkill KILL_THREAD", x64(t, "tgkill"), unix.SECCOMP_RET_KILL_THREAD},
		{"getpid TRAP", x64(t, "getpid"), unix.SECCOMP_RET_TRAP},
		{"getppid TRACE data from errnoRet", x64(t, "getppid"), unix.SECCOMP_RET_TRACE | 7},
		{"gettid TRACE data defaults to EPERM", x64(t, "gettid"), unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{"getuid LOG", x64(t, "getuid"), unix.SECCOMP_RET_LOG},
		{"unknown name skipped, the rule's other names apply", x64(t, "getgid"), retAllow},
		{"unlisted open gets default EPERM", x64(t, "open"), retErrno(unix.EPERM)},
	})
}

func TestDefaultErrnoRetAndAllowDefault(t *testing.T) {
	v := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(uint(unix.EACCES)),
		Syscalls:        []specs.LinuxSyscall{{Names: []string{"read", "openat"}, Action: specs.ActAllow}},
	}, amd64)
	check(t, v, []expectation{
		{"default errno EACCES", x64(t, "write"), retErrno(unix.EACCES)},
		{"read allowed", x64(t, "read"), retAllow},
	})

	v = mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintp(38)}},
	}, amd64)
	check(t, v, []expectation{
		{"deny list: mkdir denied", x64(t, "mkdir"), retErrno(38)},
		{"deny list: others allowed", x64(t, "openat"), retAllow},
		{"deny list: numbers above the profile stay allowed", call{arch: unix.AUDIT_ARCH_X86_64, nr: 1000}, retAllow},
	})
}

// TestArgs64 compares every operator on 64-bit arguments, with values whose
// high half decides, against plain Go arithmetic.
func TestArgs64(t *testing.T) {
	datums := []uint64{0, 1, 0xffffffff, 0x100000000, 0x1_0000_0002, 0x2_0000_0001, 0xffffffff_ffffffff, 0x8000_0000_0000_0000, 0x7fffffff_00000000}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual}
	for _, op := range ops {
		for _, d := range datums {
			v := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActErrno,
				Syscalls: []specs.LinuxSyscall{{Names: []string{"lseek"}, Action: specs.ActAllow,
					Args: []specs.LinuxSeccompArg{{Index: 1, Value: d, Op: op}}}},
			}, amd64)
			for _, x := range neighbours(datums) {
				want := retErrno(unix.EPERM)
				if holds(op, x, d, 0) {
					want = retAllow
				}
				if got := v.run(x64(t, "lseek", 0, x)); got != want {
					t.Errorf("lseek arg1 %#x %s %#x: got %s, want %s", x, op, d, describe(got), describe(want))
				}
			}
		}
	}
}

func TestMaskedEq64(t *testing.T) {
	cases := []struct{ mask, val uint64 }{
		{0x7E020000, 0}, // Docker's clone namespace flags
		{0xff00000000, 0x1200000000},
		{0xffffffff_ffffffff, 0x1_0000_0002},
		{0x8000_0000_0000_0001, 0x8000_0000_0000_0000},
		{0xf0, 0x1f3}, // valueTwo bits outside the mask are ignored, as libseccomp
		{0, 0},
	}
	args := []uint64{0, 1, 2, 0x20000, 0x10000000, 0x1_0000_0002, 0x12_0000_0000, 0x13_0000_0000, 0x8000_0000_0000_0000, 0x8000_0000_0000_0001, 0xf3, 0x13, 0xffffffff_ffffffff}
	for _, c := range cases {
		v := mustCompile(t, &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"clone"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: c.mask, ValueTwo: c.val, Op: specs.OpMaskedEqual}}}},
		}, amd64)
		for _, x := range args {
			want := retErrno(unix.EPERM)
			if x&c.mask == c.val&c.mask {
				want = retAllow
			}
			if got := v.run(x64(t, "clone", x)); got != want {
				t.Errorf("clone(%#x) with mask %#x value %#x: got %s, want %s", x, c.mask, c.val, describe(got), describe(want))
			}
		}
	}
}

// neighbours returns the values and each of them ±1 in each 32-bit half.
func neighbours(vals []uint64) []uint64 {
	var out []uint64
	for _, v := range vals {
		out = append(out, v, v+1, v-1, v+1<<32, v-1<<32, v&0xffffffff, v&^0xffffffff)
	}
	return out
}

func holds(op specs.LinuxSeccompOperator, x, v, two uint64) bool {
	switch op {
	case specs.OpEqualTo:
		return x == v
	case specs.OpNotEqual:
		return x != v
	case specs.OpLessThan:
		return x < v
	case specs.OpLessEqual:
		return x <= v
	case specs.OpGreaterThan:
		return x > v
	case specs.OpGreaterEqual:
		return x >= v
	case specs.OpMaskedEqual:
		return x&v == two&v
	}
	panic("unknown op " + op)
}

func TestArgsAndedRulesOred(t *testing.T) {
	v := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			// mmap(…, prot == PROT_READ|PROT_WRITE, flags == MAP_PRIVATE|MAP_ANONYMOUS, …)
			{Names: []string{"mmap"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 2, Value: 3, Op: specs.OpEqualTo},
				{Index: 3, Value: 0x22, Op: specs.OpEqualTo},
			}},
			// Two conditions on the same argument: a range (both must hold).
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 2, Op: specs.OpGreaterEqual},
				{Index: 0, Value: 10, Op: specs.OpLessEqual},
			}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo}}},
		},
	}, amd64)
	eperm := retErrno(unix.EPERM)
	check(t, v, []expectation{
		{"mmap both args match", x64(t, "mmap", 0, 4096, 3, 0x22), retAllow},
		{"mmap only prot matches", x64(t, "mmap", 0, 4096, 3, 0x21), eperm},
		{"mmap only flags match", x64(t, "mmap", 0, 4096, 7, 0x22), eperm},
		{"socket 2 in range", x64(t, "socket", 2), retAllow},
		{"socket 10 in range", x64(t, "socket", 10), retAllow},
		{"socket 1 below range", x64(t, "socket", 1), eperm},
		{"socket 11 above range", x64(t, "socket", 11), eperm},
		{"socket range ignores no high half", x64(t, "socket", 0x1_0000_0005), eperm},
		{"personality 0", x64(t, "personality", 0), retAllow},
		{"personality 8", x64(t, "personality", 8), retAllow},
		{"personality query", x64(t, "personality", 0xffffffff), retAllow},
		{"personality 4", x64(t, "personality", 4), eperm},
		{"personality sign-extended -1 is another value", x64(t, "personality", 0xffffffff_ffffffff), eperm},
	})
}

func TestMostRestrictiveMatchWins(t *testing.T) {
	for _, order := range []string{"allow first", "deny first"} {
		rules := []specs.LinuxSyscall{
			{Names: []string{"write"}, Action: specs.ActAllow},
			{Names: []string{"write"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EBADF)), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 99, Op: specs.OpEqualTo}}},
			{Names: []string{"write"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 666, Op: specs.OpEqualTo}}},
			{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EIO)), Args: []specs.LinuxSeccompArg{{Index: 2, Value: 10, Op: specs.OpGreaterThan}}},
			{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EINVAL)), Args: []specs.LinuxSeccompArg{{Index: 2, Value: 100, Op: specs.OpGreaterThan}}},
			{Names: []string{"read"}, Action: specs.ActLog},
		}
		if order == "deny first" {
			for i, j := 0, len(rules)-1; i < j; i, j = i+1, j-1 {
				rules[i], rules[j] = rules[j], rules[i]
			}
		}
		v := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules}, amd64)
		firstErrno := retErrno(unix.EIO)
		if order == "deny first" {
			firstErrno = retErrno(unix.EINVAL)
		}
		check(t, v, []expectation{
			{order + ": write(1)", x64(t, "write", 1), retAllow},
			{order + ": write(99) ERRNO beats ALLOW", x64(t, "write", 99), retErrno(unix.EBADF)},
			{order + ": write(666) KILL beats ALLOW", x64(t, "write", 666), retKill},
			{order + ": read small → LOG", x64(t, "read", 0, 0, 5), unix.SECCOMP_RET_LOG},
			{order + ": read(…, 50) ERRNO beats LOG", x64(t, "read", 0, 0, 50), retErrno(unix.EIO)},
			{order + ": read(…, 500) both ERRNO match, first listed wins", x64(t, "read", 0, 0, 500), firstErrno},
		})
	}
}

func TestArchitectures(t *testing.T) {
	base := []specs.LinuxSyscall{
		{Names: []string{"read", "write"}, Action: specs.ActAllow},
		{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintp(38)},
	}
	x86 := func(name string) call { return call{arch: unix.AUDIT_ARCH_I386, nr: nr(t, specs.ArchX86, name)} }
	x32 := func(name string) call { return call{arch: unix.AUDIT_ARCH_X86_64, nr: nr(t, specs.ArchX32, name)} }
	foreign := call{arch: unix.AUDIT_ARCH_AARCH64, nr: nr(t, specs.ArchAARCH64, "read")}

	// Only the native architecture (none listed).
	v := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: base}, amd64)
	check(t, v, []expectation{
		{"native read", x64(t, "read"), retAllow},
		{"native mkdir", x64(t, "mkdir"), retErrno(38)},
		{"x86 not listed: killed", x86("read"), retKill},
		{"x32 not listed: killed", x32("read"), retKill},
		{"foreign arch killed", foreign, retKill},
	})

	// All three x86 ABIs, plus names of architectures this host cannot run.
	v = mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchPPC64LE, specs.ArchS390X},
		Syscalls:      base,
	}, amd64)
	check(t, v, []expectation{
		{"x86_64 read", x64(t, "read"), retAllow},
		{"x86 read (nr 3)", x86("read"), retAllow},
		{"x86 mkdir (nr 39)", x86("mkdir"), retErrno(38)},
		{"x86 nr 0 (restart_syscall) default", call{arch: unix.AUDIT_ARCH_I386, nr: 0}, retErrno(unix.EPERM)},
		{"x32 read", x32("read"), retAllow},
		{"x32 mkdir", x32("mkdir"), retErrno(38)},
		{"x32 open default", x32("open"), retErrno(unix.EPERM)},
		{"x32 nr without its x86_64 twin", call{arch: unix.AUDIT_ARCH_X86_64, nr: x32SyscallBit | nr(t, specs.ArchX86_64, "open")}, retErrno(unix.EPERM)},
		{"foreign arch killed", foreign, retKill},
		{"ppc64le listed but not runnable here: killed", call{arch: unix.AUDIT_ARCH_PPC64LE, nr: 3}, retKill},
	})
	if nr(t, specs.ArchX86, "read") == nr(t, specs.ArchX86_64, "read") {
		t.Fatal("test assumes read differs between x86 and x86_64")
	}
}

func TestArm64Host(t *testing.T) {
	v := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchAARCH64, specs.ArchARM},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "set_tls"}, Action: specs.ActAllow},
			{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(38)},
			{Names: []string{"openat"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0x1_0000_0010, Op: specs.OpLessThan}}},
		},
	}, hostARM64)
	a64 := func(name string, args ...uint64) call {
		c := call{arch: unix.AUDIT_ARCH_AARCH64, nr: nr(t, specs.ArchAARCH64, name)}
		copy(c.args[:], args)
		return c
	}
	arm := func(name string, args ...uint64) call {
		c := call{arch: unix.AUDIT_ARCH_ARM, nr: nr(t, specs.ArchARM, name)}
		copy(c.args[:], args)
		return c
	}
	check(t, v, []expectation{
		{"aarch64 read (nr 63)", a64("read"), retAllow},
		{"aarch64 mkdirat", a64("mkdirat"), retErrno(38)},
		{"aarch64 openat flags below 2^32", a64("openat", 0, 0, 0xffffffff), retAllow},
		{"aarch64 openat flags 2^32+16", a64("openat", 0, 0, 0x1_0000_0010), retErrno(unix.EPERM)},
		{"arm read (nr 3)", arm("read"), retAllow},
		{"arm private set_tls", arm("set_tls"), retAllow},
		{"arm mkdirat", arm("mkdirat"), retErrno(38)},
		{"arm: 32-bit ABI compares low halves: 5 < 0x10", arm("openat", 0, 0, 5), retAllow},
		{"arm: 32-bit ABI compares low halves: 0xffffffff >= 0x10", arm("openat", 0, 0, 0xffffffff), retErrno(unix.EPERM)},
		{"x86_64 on arm64 host killed", x64(t, "read"), retKill},
	})
}

func Test32BitArgsTruncated(t *testing.T) {
	v := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff_ffffffff, Op: specs.OpEqualTo}}},
			{Names: []string{"lseek"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 0x5_0000_0010, Op: specs.OpGreaterThan}}},
		},
	}, amd64)
	x86 := func(name string, args ...uint64) call {
		c := call{arch: unix.AUDIT_ARCH_I386, nr: nr(t, specs.ArchX86, name)}
		copy(c.args[:], args)
		return c
	}
	check(t, v, []expectation{
		{"x86 personality(-1): value truncated to 0xffffffff", x86("personality", 0xffffffff), retAllow},
		{"x86 personality(0)", x86("personality", 0), retErrno(unix.EPERM)},
		{"x86 lseek 0x11 > 0x10 (low halves)", x86("lseek", 0, 0x11), retAllow},
		{"x86 lseek 0x10", x86("lseek", 0, 0x10), retErrno(unix.EPERM)},
		{"x86 lseek: high half of the argument ignored", x86("lseek", 0, 0x7_0000_0001), retErrno(unix.EPERM)},
		{"x86_64 personality(0xffffffff) is not -1", x64(t, "personality", 0xffffffff), retErrno(unix.EPERM)},
		{"x86_64 personality(-1)", x64(t, "personality", 0xffffffff_ffffffff), retAllow},
	})
}

func TestSocketcallAndIPCMultiplexers(t *testing.T) {
	v := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"socket", "send"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EACCES))},
			{Names: []string{"shmat"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EACCES))},
			{Names: []string{"connect"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 5, Op: specs.OpEqualTo}}},
		},
	}, amd64)
	x86 := func(name string, args ...uint64) call {
		c := call{arch: unix.AUDIT_ARCH_I386, nr: nr(t, specs.ArchX86, name)}
		copy(c.args[:], args)
		return c
	}
	eacces := retErrno(unix.EACCES)
	check(t, v, []expectation{
		{"x86 socket direct", x86("socket", 2), eacces},
		{"x86 socketcall(SYS_SOCKET)", x86("socketcall", 1), eacces},
		{"x86 socketcall(SYS_SEND), no direct send on x86", x86("socketcall", 9), eacces},
		{"x86 socketcall(SYS_BIND) allowed", x86("socketcall", 2), retAllow},
		{"x86 socketcall(SYS_CONNECT): rule has conditions, not multiplexed", x86("socketcall", 3, 5), retAllow},
		{"x86 connect(5) direct", x86("connect", 5), retErrno(unix.EPERM)},
		{"x86 ipc(SHMAT)", x86("ipc", 21), eacces},
		{"x86 ipc(SHMAT) with IPC version 1 in the upper bits", x86("ipc", 1<<16|21), eacces},
		{"x86 ipc(SHMDT) allowed", x86("ipc", 22), retAllow},
		{"x86_64 socket", x64(t, "socket", 2), eacces},
		{"x86_64 shmat", x64(t, "shmat"), eacces},
	})
}

func TestEnosysAboveTheProfile(t *testing.T) {
	rules := []specs.LinuxSyscall{{Names: []string{"read", "write", "openat", "close"}, Action: specs.ActAllow}}
	v := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX32}, Syscalls: rules}, amd64)
	openat := nr(t, specs.ArchX86_64, "openat") // the highest named: 257
	check(t, v, []expectation{
		{"named", x64(t, "openat"), retAllow},
		{"below the highest named: default", x64(t, "mkdir"), retErrno(unix.EPERM)},
		{"above the highest named: ENOSYS", call{arch: unix.AUDIT_ARCH_X86_64, nr: openat + 1}, retErrno(unix.ENOSYS)},
		{"clone3 (435) newer than the profile", x64(t, "clone3"), retErrno(unix.ENOSYS)},
		{"largest x86_64 number", call{arch: unix.AUDIT_ARCH_X86_64, nr: x32SyscallBit - 1}, retErrno(unix.ENOSYS)},
		{"x32 above its highest named", call{arch: unix.AUDIT_ARCH_X86_64, nr: x32SyscallBit | (openat + 1)}, retErrno(unix.ENOSYS)},
		{"x32 nr -1", call{arch: unix.AUDIT_ARCH_X86_64, nr: 0xffffffff}, retErrno(unix.ENOSYS)},
	})
	// Not with a permissive default, nor when the default already is ENOSYS.
	for _, s := range []*specs.LinuxSeccomp{
		{DefaultAction: specs.ActLog, Syscalls: rules},
		{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(uint(unix.ENOSYS)), Syscalls: rules},
		{DefaultAction: specs.ActKillProcess, Syscalls: rules},
	} {
		v := mustCompile(t, s, amd64)
		want, _ := action(s.DefaultAction, s.DefaultErrnoRet)
		if s.DefaultAction == specs.ActKillProcess {
			want = retErrno(unix.ENOSYS) // a denying default gets the stub
		}
		if got := v.run(x64(t, "clone3")); got != want {
			t.Errorf("default %s: clone3 got %s, want %s", s.DefaultAction, describe(got), describe(want))
		}
	}
}

func TestFlags(t *testing.T) {
	p, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Flags != unix.SECCOMP_FILTER_FLAG_LOG|unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW {
		t.Errorf("flags %#x", p.Flags)
	}
}

func TestCompileErrors(t *testing.T) {
	allow := func(sc ...specs.LinuxSyscall) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: sc}
	}
	cases := []struct {
		s       *specs.LinuxSeccomp
		wantErr string
		notSupp bool
	}{
		{nil, "no config", false},
		{&specs.LinuxSeccomp{}, "defaultAction is required", false},
		{&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}, `unknown action "SCMP_ACT_BOGUS"`, false},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, "SCMP_ACT_NOTIFY", true},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock"}, "listenerPath", true},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"}}, "SECCOMP_FILTER_FLAG_TSYNC", true},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}}, "WAIT_KILLABLE_RECV", true},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, DefaultErrnoRet: uintp(1)}, "errnoRet is only valid", false},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(5000)}, "larger than the largest errno", false},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_VAX"}}, `unknown seccomp architecture "SCMP_ARCH_VAX"`, false},
		{allow(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActNotify}), "syscalls[0]: action SCMP_ACT_NOTIFY", true},
		{allow(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow, ErrnoRet: uintp(1)}), "syscalls[0]: errnoRet is only valid", false},
		{allow(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActTrace, ErrnoRet: uintp(70000)}), "16-bit", false},
		{allow(specs.LinuxSyscall{Action: specs.ActAllow}), "syscalls[0]: no syscall names", false},
		{allow(specs.LinuxSyscall{Names: []string{""}, Action: specs.ActAllow}), "empty syscall name", false},
		{allow(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}), "argument index 6 out of range", false},
		{allow(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_LIKE"}}}), `unknown operator "SCMP_CMP_LIKE"`, false},
	}
	for _, c := range cases {
		_, err := Compile(c.s)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("want error containing %q, got %v", c.wantErr, err)
			continue
		}
		if errors.Is(err, ErrNotSupported) != c.notSupp {
			t.Errorf("%v: errors.Is(ErrNotSupported) = %v, want %v", err, !c.notSupp, c.notSupp)
		}
	}
}

// TestLongJumps compiles a filter far larger than 256 instructions with
// argument checks on every x86_64 syscall, so that jumps need trampolines,
// and checks every syscall's decision.
func TestLongJumps(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86}}
	// 200 x86_64 syscalls (x86 has most of them too: the filter stays under 4096).
	type sc struct {
		name string
		nr   uint32
	}
	var tested []sc
	for i, name := range syscallNames {
		if n, ok := archX86_64.nr(i); ok && len(tested) < 200 {
			tested = append(tested, sc{name, n})
		}
	}
	for _, e := range tested {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{e.name}, Action: specs.ActErrno, ErrnoRet: uintp(uint(e.nr % 4000)),
			Args: []specs.LinuxSeccompArg{{Index: uint(e.nr % 6), Value: uint64(e.nr) << 32, Op: specs.OpGreaterEqual}}})
	}
	p, err := compile(s, amd64)
	if err != nil {
		t.Fatal(err)
	}
	jas := 0
	for _, f := range p.Filter {
		if f.Code == unix.BPF_JMP|unix.BPF_JA {
			jas++
		}
	}
	if len(p.Filter) < 1000 || jas == 0 {
		t.Fatalf("want a filter of more than 1000 instructions with trampolines, got %d instructions, %d ja", len(p.Filter), jas)
	}
	v := newVM(t, p)
	for _, e := range tested {
		c := call{arch: unix.AUDIT_ARCH_X86_64, nr: e.nr}
		c.args[e.nr%6] = uint64(e.nr) << 32
		if got, want := v.run(c), retErrno(unix.Errno(e.nr%4000)); got != want {
			t.Errorf("%s matching: got %s, want %s", e.name, describe(got), describe(want))
		}
		c.args[e.nr%6] = uint64(e.nr)<<32 - 1
		if got, want := v.run(c), retErrno(unix.EPERM); got != want {
			t.Errorf("%s not matching: got %s, want %s", e.name, describe(got), describe(want))
		}
	}
	// The x86 section sits after the large x86_64 one.
	for _, e := range tested {
		n, ok := archX86.lookup(e.name)
		if !ok {
			continue
		}
		c := call{arch: unix.AUDIT_ARCH_I386, nr: n}
		c.args[e.nr%6] = uint64(e.nr) << 32 // truncated on x86: the value is 0, so >= always holds
		if got, want := v.run(c), retErrno(unix.Errno(e.nr%4000)); got != want {
			t.Errorf("x86 %s: got %s, want %s", e.name, describe(got), describe(want))
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	p, err := Compile(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	p.Flags = unix.SECCOMP_FILTER_FLAG_LOG
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var q Program
	if err := q.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if q.Flags != p.Flags || len(q.Filter) != len(p.Filter) {
		t.Fatalf("round trip: flags %#x len %d, want %#x len %d", q.Flags, len(q.Filter), p.Flags, len(p.Filter))
	}
	for i := range p.Filter {
		if p.Filter[i] != q.Filter[i] {
			t.Fatalf("instruction %d: %+v != %+v", i, q.Filter[i], p.Filter[i])
		}
	}
	for _, bad := range [][]byte{nil, b[:11], b[:len(b)-1], append(append([]byte{}, b...), 0), append([]byte("XXXX"), b[4:]...)} {
		if err := new(Program).UnmarshalBinary(bad); err == nil {
			t.Errorf("UnmarshalBinary accepted %d corrupt bytes", len(bad))
		}
	}
	if _, err := (&Program{}).MarshalBinary(); err == nil {
		t.Error("MarshalBinary accepted an empty program")
	}
}
