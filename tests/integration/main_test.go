// Package integration drives the real berth-runc binary as its callers do,
// on busybox bundles, and checks what a user would check. The tests need
// root: under CI (CI=true) running them without root fails, elsewhere they
// skip with a message.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testutil"
	"github.com/berth-project/berth/runtime/profile"
)

var (
	runcBin  string // the berth-runc under test
	template string // a busybox rootfs to copy into bundles
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if code, ok := testutil.MainRequiresRoot("integration tests"); !ok {
		return code
	}
	tmp, err := os.MkdirTemp("", "berth-itest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if runcBin, err = testutil.Binary("BERTH_RUNC", tmp, "berth-runc"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	template = filepath.Join(tmp, "busybox-rootfs")
	if err := makeBusyboxRootfs(template); err != nil {
		fmt.Fprintln(os.Stderr, "busybox rootfs:", err)
		return 1
	}
	before := leakSnapshot()
	code := m.Run()
	if leaks := testutil.Added(before, leakSnapshot()); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the tests left these behind:\n  %s\n", strings.Join(leaks, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	return code
}

// makeBusyboxRootfs builds a minimal root filesystem from Debian's busybox-static.
func makeBusyboxRootfs(dir string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox not found (apt-get install busybox-static): %w", err)
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return err
	}
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
				return err
			}
		}
	}
	os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	return nil
}

// copyTree copies the template rootfs (regular files, dirs, symlinks).
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case info.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
	})
}

// bundle is a test bundle: a busybox rootfs and a config.
type bundle struct {
	t    *testing.T
	Dir  string
	Root string // state root for berth-runc
	Spec *specs.Spec
	Env  []string // extra environment for berth-runc (BERTH_RUNC_GOINIT=1, ...)
}

// newBundle makes a bundle with the default spec running args, without a terminal.
func newBundle(t *testing.T, args ...string) *bundle {
	t.Helper()
	dir := t.TempDir()
	if err := copyTree(template, filepath.Join(dir, "rootfs")); err != nil {
		t.Fatal(err)
	}
	s := profile.Default()
	s.Process.Terminal = false
	s.Process.Args = args
	s.Process.Env = []string{"PATH=/bin", "HOME=/root"}
	s.Hostname = "berth-test"
	return &bundle{t: t, Dir: dir, Root: filepath.Join(dir, "state"), Spec: s}
}

func (b *bundle) write() {
	b.t.Helper()
	data, err := json.MarshalIndent(b.Spec, "", "  ")
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// result of one berth-runc invocation.
type result struct {
	Stdout, Stderr string
	Code           int
}

// runc runs berth-runc with this bundle's state root.
func (b *bundle) runc(args ...string) result {
	b.t.Helper()
	return b.runcIn(nil, args...)
}

func (b *bundle) runcIn(stdin []byte, args ...string) result {
	b.t.Helper()
	cmd := exec.Command(runcBin, append([]string{"--root", b.Root}, args...)...)
	cmd.Dir = b.Dir
	if len(b.Env) > 0 {
		cmd.Env = append(os.Environ(), b.Env...)
	}
	// Files, not pipes: a created container keeps the stdio it was given,
	// and a pipe would keep Wait waiting for it.
	outf, err := os.CreateTemp(b.Dir, "stdout-")
	if err != nil {
		b.t.Fatal(err)
	}
	errf, err := os.CreateTemp(b.Dir, "stderr-")
	if err != nil {
		b.t.Fatal(err)
	}
	defer func() {
		outf.Close()
		errf.Close()
		os.Remove(outf.Name())
		os.Remove(errf.Name())
	}()
	cmd.Stdout, cmd.Stderr = outf, errf
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	read := func(f *os.File) string {
		data, _ := os.ReadFile(f.Name())
		return string(data)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		b.t.Fatalf("berth-runc %v: timed out\nstdout: %s\nstderr: %s", args, read(outf), read(errf))
	}
	return result{read(outf), read(errf), cmd.ProcessState.ExitCode()}
}

// mustRun runs args and fails the test unless the exit code is 0.
func (b *bundle) mustRunc(args ...string) string {
	b.t.Helper()
	r := b.runc(args...)
	if r.Code != 0 {
		b.t.Fatalf("berth-runc %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// run writes the config and runs the container to completion.
func (b *bundle) run(id string) result {
	b.t.Helper()
	b.write()
	return b.runc("run", "--bundle", b.Dir, id)
}

// create writes the config, creates the container and deletes it at cleanup.
func (b *bundle) create(id string, extra ...string) {
	b.t.Helper()
	b.write()
	args := append([]string{"create", "--bundle", b.Dir}, extra...)
	b.mustRunc(append(args, id)...)
	b.t.Cleanup(func() { b.runc("delete", "--force", id) })
}

type stateOut struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

func (b *bundle) state(id string) stateOut {
	b.t.Helper()
	var s stateOut
	out := b.mustRunc("state", id)
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		b.t.Fatalf("state output is not JSON: %v\n%s", err, out)
	}
	return s
}

// waitStatus polls until the container reaches status.
func (b *bundle) waitStatus(id, status string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		r := b.runc("state", id)
		var s stateOut
		if r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &s) == nil {
			if s.Status == status {
				return
			}
			last = s.Status
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.t.Fatalf("container %s never reached %s (last seen %q)", id, status, last)
}

// leakSnapshot lists what berth may leave on the host.
func leakSnapshot() map[string]bool {
	out := map[string]bool{}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && strings.Contains(f[4], "berth") && !strings.Contains(f[4], "berth-e2e-") {
				out["mount "+f[4]] = true
			}
		}
	}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(p, "/") > 7 {
			return filepath.SkipDir
		}
		// Not the engine's containers (64-hex ids), whose tests may run
		// meanwhile.
		if (strings.Contains(filepath.Base(p), "berth") || strings.Contains(p, "/berth/")) && len(filepath.Base(p)) != 64 {
			out["cgroup "+p] = true
		}
		return nil
	})
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.HasPrefix(cmd, []byte("berth-runc\x00init")) {
				out["process "+e.Name()+" berth-runc init"] = true
			}
		}
	}
	return out
}
