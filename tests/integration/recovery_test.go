package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestKilledCreateIsCleanedUp: kill -9 of berth-runc in the middle of
// create (while a createRuntime hook runs) leaves a container that delete
// removes completely: no process, cgroup or state.
func TestKilledCreateIsCleanedUp(t *testing.T) {
	b := newBundle(t, "true")
	marker := filepath.Join(b.Dir, "hook-started")
	b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
		Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + marker + "; sleep 30"},
	}}}
	b.write()
	cmd := exec.Command(runcBin, "--root", b.Root, "create", "--bundle", b.Dir, "killed-create")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFile(t, marker)
	// The create and its hook, as a group: what kill -9 of a shell job does.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()

	st := b.state("killed-create")
	if st.Status != "creating" && st.Status != "stopped" {
		t.Errorf("a half-created container reports %q", st.Status)
	}
	b.mustRunc("delete", "--force", "killed-create")
	assertNothingLeft(t, b, "killed-create")
	// Its init is gone too.
	if st.Pid > 0 {
		if _, err := os.Stat("/proc/" + itoa(st.Pid)); err == nil {
			if cmdline, _ := os.ReadFile("/proc/" + itoa(st.Pid) + "/cmdline"); strings.HasPrefix(string(cmdline), "berth-runc") {
				t.Errorf("the init %d of the killed create still runs", st.Pid)
			}
		}
	}
	// And the id can be used again.
	b.Spec.Hooks = nil
	b.write()
	if r := b.runc("run", "--bundle", b.Dir, "killed-create"); r.Code != 0 {
		t.Errorf("reusing the id after cleanup: %d %s", r.Code, r.Stderr)
	}
}

// TestKilledInitShowsStopped: a container whose processes were killed
// behind the runtime's back is reported stopped and deletes cleanly.
func TestKilledInitShowsStopped(t *testing.T) {
	b := startSleeper(t, "gone", nil)
	pid := b.state("gone").Pid
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && b.state("gone").Status != "stopped" {
		time.Sleep(10 * time.Millisecond)
	}
	if st := b.state("gone"); st.Status != "stopped" {
		t.Fatalf("status %q after the init was killed", st.Status)
	}
	b.mustRunc("delete", "gone")
	assertNothingLeft(t, b, "gone")
}
