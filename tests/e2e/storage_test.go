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
