package seccomp

import (
	"encoding/json"
	"errors"
	"os/exec"
	"syscall"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
	"github.com/berth-project/berth/runtime/seccomp/internal/int80"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Probes of the x86 (int $0x80) and x32 ABIs, made by a 64-bit child so
// that the kernel runs the filter's other sections. Each child makes one.
func init() {
	errno := func(r int32) map[string]int {
		if r < 0 {
			return map[string]int{"errno": int(-r)}
		}
		return map[string]int{"errno": 0}
	}
	extraProbes["x86-getpid"] = func() map[string]int { return errno(int80.Syscall(20, 0, 0, 0)) }
	// mkdir(NULL, 0755): EFAULT from the kernel, unless the filter answers first.
	extraProbes["x86-mkdir"] = func() map[string]int { return errno(int80.Syscall(39, 0, 0o755, 0)) }
	// socketcall(SYS_SOCKET, NULL): likewise.
	extraProbes["x86-socketcall-socket"] = func() map[string]int { return errno(int80.Syscall(102, 1, 0, 0)) }
	x86 := func(name string) uint32 {
		n, _ := SyscallNumber(specs.ArchX86, name)
		return n
	}
	extraProbes["x86-mount"] = func() map[string]int { return errno(int80.Syscall(x86("mount"), 0, 0, 0)) }
	extraProbes["x86-unshare-user"] = func() map[string]int { return errno(int80.Syscall(x86("unshare"), unix.CLONE_NEWUSER, 0, 0)) }
	extraProbes["x86-clone3"] = func() map[string]int { return errno(int80.Syscall(x86("clone3"), 0, 0, 0)) }
	extraProbes["x32-getpid"] = func() map[string]int {
		_, _, e := unix.RawSyscall(x32SyscallBit|39, 0, 0, 0)
		return map[string]int{"errno": int(e)}
	}
}

// runProbe32 returns the probe's errno, or the signal that killed the child.
func runProbe32(t *testing.T, p *Program, probe string) (errno int, sig syscall.Signal) {
	t.Helper()
	out, stderr, err := runChild(t, probe, p, false, t.TempDir())
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			return -1, ws.Signal()
		}
	}
	if err != nil {
		t.Fatalf("%s child: %v\n%s", probe, err, stderr)
	}
	var r map[string]int
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%s output %q: %v", probe, out, err)
	}
	return r["errno"], 0
}

func TestLoadX86AndX32Sections(t *testing.T) {
	compileT := func(s *specs.LinuxSeccomp) *Program {
		p, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules := []specs.LinuxSyscall{
		{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintp(38)},
		{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EACCES))},
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV)), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
	}
	withX86 := compileT(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86}, Syscalls: rules})
	nativeOnly := compileT(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules})
	docker := compileT(DefaultProfile())
	withX32 := compileT(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV))}}})

	for _, c := range []struct {
		what    string
		p       *Program
		probe   string
		errno   unix.Errno
		killed  bool
		control unix.Errno // without a filter
		root    bool       // the control needs root
	}{
		{"x86 mkdir, x86 listed", withX86, "x86-mkdir", 38, false, unix.EFAULT, false},
		{"x86 getpid, x86 listed", withX86, "x86-getpid", 0, false, 0, false},
		{"x86 socketcall(SYS_SOCKET) follows the socket rule", withX86, "x86-socketcall-socket", unix.EACCES, false, unix.EFAULT, false},
		{"x86 getpid, x86 not listed", nativeOnly, "x86-getpid", 0, true, 0, false},
		{"x32 getpid, x32 not listed", nativeOnly, "x32-getpid", 0, true, unix.ENOSYS, false},
		{"x32 getpid, x32 listed (the kernel has no x32 ABI: the filter answers first)", withX32, "x32-getpid", unix.EXDEV, false, unix.ENOSYS, false},
		{"x86 mount, default profile", docker, "x86-mount", unix.EPERM, false, unix.EFAULT, true},
		{"x86 unshare(CLONE_NEWUSER), default profile", docker, "x86-unshare-user", unix.EPERM, false, unix.EINVAL, false},
		{"x86 clone3, default profile", docker, "x86-clone3", unix.ENOSYS, false, unix.EINVAL, false},
	} {
		t.Run(c.what, func(t *testing.T) {
			if c.root {
				testutil.RequireRoot(t, "it mounts in a private mount namespace")
			}
			e, sig := runProbe32(t, nil, c.probe)
			if sig != 0 || e != int(c.control) {
				t.Fatalf("%s without a filter: errno %s, signal %v; want %s", c.probe, errnoName(e), sig, errnoName(int(c.control)))
			}
			e, sig = runProbe32(t, c.p, c.probe)
			switch {
			case c.killed && sig != unix.SIGSYS:
				t.Errorf("want the child killed by SIGSYS, got errno %s, signal %v", errnoName(e), sig)
			case !c.killed && (sig != 0 || e != int(c.errno)):
				t.Errorf("got errno %s, signal %v; want %s", errnoName(e), sig, errnoName(int(c.errno)))
			}
		})
	}
}
