package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRunShowsIsolation(t *testing.T) {
	b := newBundle(t, "sh", "-c", "hostname; echo pid=$$; ps -o pid,args; exit 0")
	r := b.run("iso")
	if r.Code != 0 {
		t.Fatalf("run: exit %d: %s", r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if lines[0] != "berth-test" {
		t.Errorf("hostname = %q, want berth-test", lines[0])
	}
	if lines[1] != "pid=1" {
		t.Errorf("the container's process is %q, want pid=1", lines[1])
	}
	// Only the shell (PID 1) and ps itself are visible.
	procs := lines[3:]
	if len(procs) != 2 {
		t.Errorf("container sees %d processes, want 2 (sh and ps):\n%s", len(procs), r.Stdout)
	}
	if _, err := os.Stat(filepath.Join(b.Root, "iso")); !os.IsNotExist(err) {
		t.Errorf("run left its state directory behind")
	}
}

func TestRunExitCode(t *testing.T) {
	b := newBundle(t, "sh", "-c", "exit 42")
	if r := b.run("exitcode"); r.Code != 42 {
		t.Fatalf("exit code %d, want 42 (stderr %s)", r.Code, r.Stderr)
	}
	// A container killed from outside: run reports 128+9.
	b = newBundle(t, "sleep", "1000")
	b.write()
	done := make(chan result, 1)
	go func() { done <- b.runc("run", "--bundle", b.Dir, "killed") }()
	b.waitStatus("killed", "running")
	b.mustRunc("kill", "killed", "KILL")
	if r := <-done; r.Code != 137 {
		t.Fatalf("exit code %d for a SIGKILLed container, want 137", r.Code)
	}
}

func TestLifecycle(t *testing.T) {
	b := newBundle(t, "sh", "-c", "echo started > /tmp/out; sleep 1000")
	b.Spec.Root.Readonly = false
	// The program's output goes to a file in the rootfs so we can see
	// whether it ran.
	b.create("life")
	st := b.state("life")
	if st.Status != "created" || st.Pid <= 0 {
		t.Fatalf("after create: status %q pid %d, want created with a pid", st.Status, st.Pid)
	}
	if st.Bundle != b.Dir {
		t.Errorf("state bundle = %q, want %q", st.Bundle, b.Dir)
	}
	out := filepath.Join(b.Dir, "rootfs", "tmp", "out")
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the user's program ran before start")
	}
	// The init waits, visible on the host.
	if _, err := os.Stat(filepath.Join("/proc", itoa(st.Pid))); err != nil {
		t.Fatalf("init process %d is not there: %v", st.Pid, err)
	}
	if r := b.runc("start", "life"); r.Code != 0 {
		t.Fatalf("start: %s", r.Stderr)
	}
	b.waitStatus("life", "running")
	waitFile(t, out)
	if r := b.runc("start", "life"); r.Code == 0 || !strings.Contains(r.Stderr, "created") {
		t.Errorf("second start should fail naming the state, got %d %q", r.Code, r.Stderr)
	}
	if r := b.runc("delete", "life"); r.Code == 0 {
		t.Errorf("delete of a running container without --force succeeded")
	}
	b.mustRunc("kill", "life", "KILL")
	b.waitStatus("life", "stopped")
	if st := b.state("life"); st.Pid != 0 {
		t.Errorf("stopped container reports pid %d", st.Pid)
	}
	b.mustRunc("delete", "life")
	if r := b.runc("state", "life"); r.Code == 0 || !strings.Contains(r.Stderr, "does not exist") {
		t.Errorf("state after delete: %d %q", r.Code, r.Stderr)
	}
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", p)
}

func itoa(n int) string { return strconv.Itoa(n) }
