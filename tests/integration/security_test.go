package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/runtime/caps"
)

// TestNoHostBinaryReachable (CVE-2019-5736): a process in the container
// takes a handle on the init's executable while the init still runs
// berth-runc, waits until the init has exec'd the user's program, and then
// reopens the handle for writing to overwrite the runtime on the host. It
// must fail, and the binary must be unchanged. The attack runs against a
// copy of berth-runc, so a regression can't damage the binary under test.
func TestNoHostBinaryReachable(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "berth-runc")
	orig := readFile(t, runcBin)
	if err := os.WriteFile(victim, []byte(orig), 0o755); err != nil {
		t.Fatal(err)
	}
	b := newBundle(t, "sleep", "1000")
	b.Spec.Root.Readonly = false
	// The strongest attacker: root in the container with every
	// capability (a --privileged container), able to open /proc/1/exe.
	all := hostBoundingCaps(t)
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	b.write()
	vr := func(args ...string) result {
		saved := runcBin
		runcBin = victim
		defer func() { runcBin = saved }()
		return b.runc(args...)
	}
	if r := vr("create", "--bundle", b.Dir, "exe"); r.Code != 0 {
		t.Fatalf("create: %s", r.Stderr)
	}
	defer b.runc("delete", "--force", "exe") // with the intact binary
	attack := `exec 3</proc/1/exe || { echo NOHANDLE > /tmp/result; exit; }
while [ ! -e /tmp/go ]; do sleep 0.05; done
if echo pwned > /proc/self/fd/3; then echo WROTE > /tmp/result; else echo BLOCKED > /tmp/result; fi`
	if r := vr("exec", "--detach", "exe", "sh", "-c", attack); r.Code != 0 {
		t.Fatalf("exec: %s", r.Stderr)
	}
	time.Sleep(200 * time.Millisecond) // let the attacker open its handle
	if r := vr("start", "exe"); r.Code != 0 {
		t.Fatalf("start: %s", r.Stderr)
	}
	b.waitStatus("exe", "running")
	os.WriteFile(filepath.Join(b.Dir, "rootfs", "tmp", "go"), nil, 0o644)
	res := filepath.Join(b.Dir, "rootfs", "tmp", "result")
	waitFile(t, res)
	time.Sleep(50 * time.Millisecond)
	got := strings.TrimSpace(readFile(t, res))
	if got == "WROTE" {
		t.Errorf("the container wrote through its init's executable")
	}
	if got == "NOHANDLE" {
		t.Errorf("the attack could not even open /proc/1/exe; the test proves nothing")
	}
	if readFile(t, victim) != orig {
		t.Fatalf("the host berth-runc binary was overwritten")
	}
}

// TestNoLeakedFds (CVE-2024-21626): in a created container, PID 1 holds
// only stdio, the exec fifo and nothing of the host's filesystem.
func TestNoLeakedFds(t *testing.T) {
	b := newBundle(t, "sleep", "1000")
	b.create("fds")
	pid := b.state("fds").Pid
	ents, err := os.ReadDir("/proc/" + itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, _ := os.Readlink("/proc/" + itoa(pid) + "/fd/" + e.Name())
		switch {
		case e.Name() == "0" || e.Name() == "1" || e.Name() == "2":
		case strings.HasSuffix(target, "/exec.fifo"):
		case target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]":
			// The Go runtime's poller: no host object behind it.
		default:
			t.Errorf("init holds fd %s -> %s", e.Name(), target)
		}
	}
	// And nothing leaks into the user's program once started.
	b2 := newBundle(t, "ls", "/proc/self/fd")
	r := b2.run("fds2")
	if got := strings.Fields(r.Stdout); len(got) != 4 { // 0 1 2 and ls's own directory fd
		t.Errorf("the container's program starts with fds %v, want only 0 1 2 (plus ls's own)", got)
	}
}

// TestMountThroughSymlinkStaysInside: a rootfs symlink pointing at a host
// path can't redirect a mount out of the rootfs.
func TestMountThroughSymlinkStaysInside(t *testing.T) {
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "precious"), []byte("host data"), 0o644)
	b := newBundle(t, "true")
	if err := os.Symlink(hostDir, filepath.Join(b.Dir, "rootfs", "escape")); err != nil {
		t.Fatal(err)
	}
	b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/escape", Type: "tmpfs", Source: "tmpfs"})
	r := b.run("symlink-escape")
	_ = r
	data, err := os.ReadFile(filepath.Join(hostDir, "precious"))
	if err != nil || string(data) != "host data" {
		t.Fatalf("host directory behind the symlink was touched: %v %q", err, data)
	}
	for _, l := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		if strings.Contains(l, hostDir) {
			t.Fatalf("a mount landed on the host path: %s", l)
		}
	}
}

// TestProcSymlinkRefused: /proc must not be a symlink in the rootfs.
func TestProcSymlinkRefused(t *testing.T) {
	b := newBundle(t, "true")
	p := filepath.Join(b.Dir, "rootfs", "proc")
	os.Remove(p)
	os.Symlink("/tmp", p)
	r := b.run("proc-symlink")
	if r.Code == 0 || !strings.Contains(r.Stderr, "/proc") {
		t.Fatalf("a /proc symlink was accepted: %d %q", r.Code, r.Stderr)
	}
	assertNothingLeft(t, b, "proc-symlink")
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// hostBoundingCaps lists the capabilities this (root) test process may
// grant: its bounding set, as Docker computes "all" for --privileged.
func hostBoundingCaps(t *testing.T) []string {
	t.Helper()
	bnd := capLines(t, readFile(t, "/proc/self/status"))["CapBnd"]
	var out []string
	for i, n := range caps.Names() {
		if bnd&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out
}
