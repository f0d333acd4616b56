package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A disk that fills up midway: the pull fails with a clear error, no
// partial image is visible, and after space is freed the store works.
func TestDiskFullDuringPull(t *testing.T) {
	dir, err := os.MkdirTemp("", "berth-diskfull-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// 40 MiB: busybox fits, web:1 (100 MB of layers) does not.
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=40m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	froot, frun := filepath.Join(dir, "root"), filepath.Join(dir, "run")
	b := func(args ...string) (string, string, int) {
		cmd := exec.Command(berthBin, append([]string{"--root", froot, "--run-dir", frun}, args...)...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return o.String(), e.String(), code
	}
	_, stderr, code := b("pull", "oci:"+filepath.Join(shared, "oci")+":web:1")
	if code == 0 {
		t.Fatal("pull of web:1 into 40 MiB succeeded")
	}
	if !strings.Contains(stderr, "no space left on device") {
		t.Fatalf("disk full: the error does not say so: %q", stderr)
	}
	if out, _, _ := b("images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("a partial image is visible after the failed pull: %q", out)
	}
	// Space comes back (the failed pull's garbage is collected); a small
	// image pulls and runs.
	if _, e, code := b("image", "prune", "-a", "-f"); code != 0 {
		t.Fatalf("prune after disk full: %s", e)
	}
	if _, e, code := b("pull", "oci:"+filepath.Join(shared, "oci")+":busybox:1.35"); code != 0 {
		t.Fatalf("pull after disk full: %s", e)
	}
	if out, e, code := b("run", "--rm", "--network", "none", "busybox:1.35", "echo", "ok"); code != 0 || out != "ok\n" {
		t.Fatalf("run after disk full: %q %q", out, e)
	}
	b("system", "reset", "--force")
}

// `berth export | head` closes the pipe early: berth must give back the
// temporary mount of the stopped container, and a later command cleans up
// after one killed outright.
func TestExportIntoClosedPipeLeavesNoMount(t *testing.T) {
	id := strings.TrimSpace(must(t, "create", "busybox:1.35"))
	t.Cleanup(func() { berth(t, "rm", "-f", id) })
	cmd := exec.Command("sh", "-c", berthBin+" --root "+root+" --run-dir "+runDir+" export "+id+" | head -c 100 >/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("export | head: %v %s", err, out)
	}
	// kill -9 while exporting.
	k := exec.Command(berthBin, "--root", root, "--run-dir", runDir, "export", id)
	pr, _ := k.StdoutPipe()
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	pr.Read(buf) // the mount is in place once output flows
	k.Process.Signal(syscall.SIGKILL)
	k.Wait()
	must(t, "ps", "-a") // any command cleans up after a dead one
	data, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(data), filepath.Join(runDir, "berth-mnt-")) {
		t.Fatalf("a temporary mount was left:\n%s", data)
	}
}
