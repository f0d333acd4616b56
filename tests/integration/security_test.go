package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestNoHostBinaryReachable (CVE-2019-5736): the container's init runs from
// a sealed copy, so /proc/1/exe seen from the container is not the host's
// berth-runc, and writing through it fails.
func TestNoHostBinaryReachable(t *testing.T) {
	b := newBundle(t, "sleep", "1000")
	b.Spec.Root.Readonly = false
	b.create("exe")
	pid := b.state("exe").Pid
	exe := readlink(t, "/proc/"+itoa(pid)+"/exe")
	if !strings.Contains(exe, "memfd:") {
		t.Errorf("created container's init runs %q, want a sealed memfd copy of berth-runc", exe)
	}
	host, err := os.Stat(runcBin)
	if err != nil {
		t.Fatal(err)
	}
	// From inside: try to overwrite the init's binary through /proc/1/exe.
	r := b.runc("exec", "exe", "sh", "-c", "echo pwned > /proc/1/exe && echo WROTE")
	if strings.Contains(r.Stdout, "WROTE") {
		t.Fatalf("the container wrote to its init's executable")
	}
	after, err := os.Stat(runcBin)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != host.Size() || !after.ModTime().Equal(host.ModTime()) {
		t.Fatalf("the host berth-runc binary changed")
	}
	// The #!/proc/self/exe variant: a program whose interpreter is the
	// exec'ing process's own binary.
	os.WriteFile(filepath.Join(b.Dir, "rootfs", "bin", "evil"), []byte("#!/proc/self/exe\n"), 0o755)
	b.runc("exec", "exe", "/bin/evil")
	after, _ = os.Stat(runcBin)
	if after.Size() != host.Size() || !after.ModTime().Equal(host.ModTime()) {
		t.Fatalf("the host berth-runc binary changed")
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
