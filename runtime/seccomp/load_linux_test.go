package seccomp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// The root tests re-execute the test binary as a child that loads a filter
// on its locked thread and then either makes raw system calls from that
// thread or execs a program. These variables configure the child.
const (
	envChild   = "BERTH_SECCOMP_CHILD"   // "probe" or "exec"
	envProgram = "BERTH_SECCOMP_PROGRAM" // base64 of Program.MarshalBinary; empty: no filter
	envPrivate = "BERTH_SECCOMP_PRIVATE" // "1": own mount namespace first
	envDir     = "BERTH_SECCOMP_DIR"     // scratch directory for the probes
	envArgv    = "BERTH_SECCOMP_ARGV"    // JSON argv for "exec"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		if err := child(mode); err != nil {
			fmt.Fprintln(os.Stderr, "seccomp test child:", err)
			os.Exit(111)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// extraProbes are child modes of architecture-specific tests.
var extraProbes = map[string]func() map[string]int{}

func child(mode string) error {
	runtime.LockOSThread() // filters, no_new_privs and mount namespaces are per thread
	// A filter that kills must not leave core files behind.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("no core dumps: %w", err)
	}
	if os.Getenv(envPrivate) == "1" {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare mount namespace: %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make / private: %w", err)
		}
	}
	if enc := os.Getenv(envProgram); enc != "" {
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return err
		}
		var p Program
		if err := p.UnmarshalBinary(b); err != nil {
			return err
		}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
		if err := p.Load(); err != nil {
			return err
		}
	}
	if f, ok := extraProbes[mode]; ok {
		return json.NewEncoder(os.Stdout).Encode(f())
	}
	switch mode {
	case "probe":
		return json.NewEncoder(os.Stdout).Encode(probe(os.Getenv(envDir)))
	case "exec":
		var argv []string
		if err := json.Unmarshal([]byte(os.Getenv(envArgv)), &argv); err != nil {
			return err
		}
		return unix.Exec(argv[0], argv, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"})
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// probe makes raw system calls from the locked thread and returns the errno
// of each (0: success).
func probe(dir string) map[string]int {
	var keep []*byte // the strings passed as uintptr stay alive until the end
	defer runtime.KeepAlive(&keep)
	cstr := func(s string) uintptr {
		b, _ := unix.BytePtrFromString(s)
		keep = append(keep, b)
		return uintptr(unsafe.Pointer(b))
	}
	r := map[string]int{}
	sys := func(name string, nr uintptr, args ...uintptr) {
		var a [6]uintptr
		copy(a[:], args)
		_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
		r[name] = int(e)
	}
	cwd := unix.AT_FDCWD
	sys("mkdirat", unix.SYS_MKDIRAT, uintptr(cwd), cstr(filepath.Join(dir, "made")), 0o755)
	sys("getpid", unix.SYS_GETPID)
	sys("getppid", unix.SYS_GETPPID)
	sys("mount", unix.SYS_MOUNT, cstr("berth-seccomp-test"), cstr(dir), cstr("tmpfs"), 0, 0)
	sys("umount2", unix.SYS_UMOUNT2, cstr(dir), unix.MNT_DETACH)
	sys("unshare-user", unix.SYS_UNSHARE, unix.CLONE_NEWUSER)
	sys("unshare-mount", unix.SYS_UNSHARE, unix.CLONE_NEWNS)
	sys("clone3", unix.SYS_CLONE3, 0, 0)
	sys("keyctl", unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd) /* KEY_SPEC_SESSION_KEYRING */, 0)
	sys("bpf", unix.SYS_BPF, unix.BPF_PROG_LOAD, 0, 0)
	sys("finit_module", unix.SYS_FINIT_MODULE, ^uintptr(0), 0, 0)
	sys("reboot", unix.SYS_REBOOT, 0, 0, 0, 0) // wrong magic: EINVAL when allowed
	return r
}

// runChild runs the test binary as a child with a filter (nil: none).
func runChild(t *testing.T, mode string, p *Program, private bool, dir string, argv ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envDir+"="+dir)
	if p != nil {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, envProgram+"="+base64.StdEncoding.EncodeToString(b))
	}
	if private {
		cmd.Env = append(cmd.Env, envPrivate+"=1")
	}
	if len(argv) > 0 {
		j, _ := json.Marshal(argv)
		cmd.Env = append(cmd.Env, envArgv+"="+string(j))
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func runProbe(t *testing.T, p *Program, private bool) (map[string]int, string) {
	t.Helper()
	dir := t.TempDir()
	out, stderr, err := runChild(t, "probe", p, private, dir)
	if err != nil {
		t.Fatalf("probe child: %v\n%s", err, stderr)
	}
	var r map[string]int
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	return r, dir
}

func errnoName(e int) string {
	if e == 0 {
		return "success"
	}
	return unix.ErrnoName(unix.Errno(e))
}

// TestLoadErrnoRet: a denied syscall returns the configured errno and does
// nothing; allowed ones work. no_new_privs is enough: no root needed.
func TestLoadErrnoRet(t *testing.T) {
	p, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(38)},
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV))},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, dir := runProbe(t, p, false)
	if r["mkdirat"] != 38 {
		t.Errorf("mkdirat under the filter: %s (%d), want errno 38 (ENOSYS) from errnoRet", errnoName(r["mkdirat"]), r["mkdirat"])
	}
	if _, err := os.Stat(filepath.Join(dir, "made")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the denied mkdirat created the directory anyway (stat: %v)", err)
	}
	if r["getppid"] != int(unix.EXDEV) {
		t.Errorf("getppid: %s, want EXDEV", errnoName(r["getppid"]))
	}
	if r["getpid"] != 0 {
		t.Errorf("getpid (allowed): %s", errnoName(r["getpid"]))
	}

	// Without the filter the same child creates the directory.
	r, dir = runProbe(t, nil, false)
	if r["mkdirat"] != 0 {
		t.Fatalf("mkdirat without a filter: %s", errnoName(r["mkdirat"]))
	}
	if _, err := os.Stat(filepath.Join(dir, "made")); err != nil {
		t.Errorf("mkdirat without a filter did not create the directory: %v", err)
	}
}

// TestLoadFlags loads with SECCOMP_FILTER_FLAG_LOG and SPEC_ALLOW, which
// this kernel supports (Features reports them).
func TestLoadFlags(t *testing.T) {
	f := Features()
	for _, want := range []string{string(specs.LinuxSeccompFlagLog), string(specs.LinuxSeccompFlagSpecAllow)} {
		if !slices.Contains(f.SupportedFlags, want) {
			t.Fatalf("kernel %s: supported flags %v lack %s", kernelRelease(), f.SupportedFlags, want)
		}
	}
	p, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := runProbe(t, p, false)
	if r["getppid"] != int(unix.EXDEV) || r["getpid"] != 0 {
		t.Errorf("with flags: getppid %s, getpid %s", errnoName(r["getppid"]), errnoName(r["getpid"]))
	}
}

func kernelRelease() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

// TestLoadDefaultProfileProbes makes the calls Docker's profile refuses, as
// root in a private mount namespace, with and without the filter.
func TestLoadDefaultProfileProbes(t *testing.T) {
	testutil.RequireRoot(t, "it mounts in a private mount namespace")
	p, err := Compile(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	filtered, _ := runProbe(t, p, true)
	open, _ := runProbe(t, nil, true)
	want := map[string]unix.Errno{
		"mount": unix.EPERM, "umount2": unix.EPERM, "unshare-user": unix.EPERM, "unshare-mount": unix.EPERM,
		"keyctl": unix.EPERM, "bpf": unix.EPERM, "finit_module": unix.EPERM, "reboot": unix.EPERM,
		"clone3": unix.ENOSYS,
	}
	for name, e := range want {
		if filtered[name] != int(e) {
			t.Errorf("%s under the default profile: %s, want %s", name, errnoName(filtered[name]), errnoName(int(e)))
		}
		if open[name] == int(e) {
			t.Errorf("%s without a filter also gives %s: the probe proves nothing", name, errnoName(int(e)))
		}
	}
	for _, name := range []string{"getpid", "mkdirat"} {
		if filtered[name] != 0 {
			t.Errorf("%s under the default profile: %s", name, errnoName(filtered[name]))
		}
	}
	t.Logf("without a filter: %v", open)
}

// TestLoadDefaultProfileExec execs real programs under Docker's profile:
// unshare -U / -m and mount fail, busybox works.
func TestLoadDefaultProfileExec(t *testing.T) {
	testutil.RequireRoot(t, "it mounts in a private mount namespace")
	p, err := Compile(DefaultProfile())
	if err != nil {
		t.Fatal(err)
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("util-linux unshare is needed: %v", err)
	}
	mount, err := exec.LookPath("mount")
	if err != nil {
		t.Fatalf("util-linux mount is needed: %v", err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		argv []string
	}{
		{[]string{unshare, "-U", "true"}},
		{[]string{unshare, "-m", "true"}},
		{[]string{mount, "-t", "tmpfs", "berth-seccomp-test", dir}},
	} {
		if _, stderr, err := runChild(t, "exec", nil, true, dir, c.argv...); err != nil {
			t.Fatalf("%v without a filter: %v\n%s", c.argv, err, stderr)
		}
		_, stderr, err := runChild(t, "exec", p, true, dir, c.argv...)
		if err == nil {
			t.Errorf("%v succeeded under the default profile", c.argv)
			continue
		}
		if !strings.Contains(stderr, "Operation not permitted") && !strings.Contains(stderr, "permission denied") {
			t.Errorf("%v under the default profile: %v, stderr %q (want EPERM)", c.argv, err, stderr)
		}
	}

	bb := busybox(t)
	script := `set -e
cd "$1"
echo hello > f; cat f
mkdir d; mv f d/g; ls d; rm -r d
ln -s /proc/self/status s; grep '^Seccomp:' s
ps -o pid,comm >/dev/null
sleep 0.01 &
wait
id -u
date +%Y >/dev/null
printf 'pipe\n' | sort | uniq
echo done`
	out, stderr, err := runChild(t, "exec", p, false, dir, bb, "sh", "-c", script, "sh", dir)
	if err != nil {
		t.Fatalf("busybox under the default profile: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	want := "hello\ng\nSeccomp:\t2\n0\npipe\ndone\n"
	if out != want {
		t.Errorf("busybox output %q, want %q (stderr %q)", out, want, stderr)
	}
}

// busybox returns the host's static busybox, installing Debian's
// busybox-static when it is missing.
func busybox(t *testing.T) string {
	t.Helper()
	if bb, err := exec.LookPath("busybox"); err == nil {
		return bb
	}
	for _, args := range [][]string{{"apt-get", "update", "-qq"}, {"apt-get", "install", "-y", "-qq", "busybox-static"}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("busybox missing and %s failed: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox-static installed but busybox not found: %v", err)
	}
	return bb
}
