package cgroups

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// requireRoot skips a test that needs root, except under CI (which runs
// as root), where running it without root fails.
func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "it creates cgroups")
}

// busybox returns the path of a static busybox (Debian's busybox-static).
func busybox(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found (apt-get install busybox-static): %v", err)
	}
	return p
}

// newGroup makes a cgroup named berth-test-<random> at the top of every
// hierarchy of the host, removed (with whatever runs in it) at cleanup.
func newGroup(t *testing.T) *Manager {
	t.Helper()
	requireRoot(t)
	m, err := New(fmt.Sprintf("/berth-test-%08x", rand.Uint32()))
	if err != nil {
		t.Fatal(err)
	}
	return created(t, m)
}

// created creates m's directories and removes them at cleanup, checking
// that nothing is left.
func created(t *testing.T, m *Manager) *Manager {
	t.Helper()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killAll(m)
		if err := m.Destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
		if m.Exists() {
			t.Errorf("cgroup %v left behind", m.Paths())
		}
	})
	return m
}

// killAll SIGKILLs every process in the group until none is left.
func killAll(m *Manager) {
	for i := 0; i < 200; i++ {
		pids, err := m.Pids()
		if err != nil || len(pids) == 0 {
			return
		}
		for _, p := range pids {
			unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// file returns the path of a controller's file in m: in that controller's
// v1 hierarchy, or in the v2 directory.
func file(t *testing.T, m *Manager, controller, name string) string {
	t.Helper()
	if m.Unified() {
		return filepath.Join(m.paths[""], name)
	}
	d, ok := m.v1(controller)
	if !ok {
		t.Fatalf("no %s hierarchy", controller)
	}
	return filepath.Join(d, name)
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// proc is a busybox shell script running in a cgroup. Its output goes to
// a file, not a pipe, so that children it leaves behind do not keep its
// end waiting.
type proc struct {
	cmd     *exec.Cmd
	outPath string
	done    chan struct{}
	err     error
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.outPath)
	return string(b)
}

// startIn starts script under busybox sh, moves it into m, and only then
// lets the script run (it waits for a line on its stdin), so everything it
// does is accounted to m.
func startIn(t *testing.T, m *Manager, script string) *proc {
	t.Helper()
	cmd := exec.Command(busybox(t), "sh", "-c", "read _ || exit 99\n"+script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp(t.TempDir(), "berth-out-")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := &proc{cmd: cmd, outPath: out.Name(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	if err := m.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	return p
}

// wait waits up to d for the script to end and returns its output.
func (p *proc) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("process did not end in %v; output: %s", d, p.output())
	}
	return p.output()
}

// signaled returns the signal that ended the process (0 if none).
func (p *proc) signaled() syscall.Signal {
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}
