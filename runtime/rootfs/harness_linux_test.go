package rootfs

// The root tests run the real Prepare/Pivot/Finalize in a child process:
// the test binary re-executed with CLONE_NEWNS|CLONE_NEWPID (and, per
// scenario, a user, cgroup or network namespace). The child builds the
// container root, then runs shell commands (busybox) inside it and reports
// what they printed; the test asserts on that. The child's mount namespace
// dies with it, and TestMain checks that no mount under the tests'
// directory is left on the host.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

const childEnv = "BERTH_ROOTFS_TEST_CHILD"

// testBase is the directory every test's temporary files live in (TMPDIR
// points at it), so leaks are easy to find.
var testBase string

func TestMain(m *testing.M) {
	if f := os.Getenv(childEnv); f != "" {
		os.Exit(childMain(f))
	}
	base, err := os.MkdirTemp("", "berth-rootfs-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create test base:", err)
		os.Exit(1)
	}
	if base, err = filepath.EvalSymlinks(base); err != nil {
		fmt.Fprintln(os.Stderr, "resolve test base:", err)
		os.Exit(1)
	}
	testBase = base
	os.Setenv("TMPDIR", base)
	code := m.Run()
	leaked, err := hostMountsUnder(base)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read host mountinfo:", err)
		code = 1
	}
	if len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: mounts leaked onto the host:\n  %s\n", strings.Join(leaked, "\n  "))
		code = 1
	} else {
		os.RemoveAll(base)
	}
	os.Exit(code)
}

// hostMountsUnder lists mounts in this process's (the host's) mount
// namespace whose mount point or source root lies under dir.
func hostMountsUnder(dir string) ([]string, error) {
	ms, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if isUnder(m.Mountpoint, dir) || strings.Contains(m.Root, dir) {
			out = append(out, m.Mountpoint+" ("+m.FSType+")")
		}
	}
	return out, nil
}

// scenario is what the child does.
type scenario struct {
	Config Config
	// PreMounts are tmpfs mounts the child makes (in its own namespace)
	// before Prepare, e.g. a submount inside a bind source.
	PreMounts []string
	// Commands run with /bin/sh -c inside the container after Finalize.
	Commands []string
}

type cmdResult struct {
	Cmd  string
	Out  string
	Exit int
}

type result struct {
	Stage   string // where it failed: prepare, pivot, finalize, or "" for success
	Err     string
	Outputs []cmdResult
}

// out returns the trimmed output of command i.
func (r result) out(i int) string { return strings.TrimSpace(r.Outputs[i].Out) }

func childMain(file string) int {
	out := os.NewFile(3, "result")
	res := runChild(file)
	if err := json.NewEncoder(out).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "write result:", err)
		return 2
	}
	return 0
}

func runChild(file string) result {
	data, err := os.ReadFile(file)
	if err != nil {
		return result{Stage: "setup", Err: err.Error()}
	}
	var sc scenario
	if err := json.Unmarshal(data, &sc); err != nil {
		return result{Stage: "setup", Err: err.Error()}
	}
	// Our namespace starts as a copy of the host's: keep the pre-mounts
	// from reaching it whatever its propagation.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return result{Stage: "setup", Err: err.Error()}
	}
	for _, p := range sc.PreMounts {
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, "size=1m"); err != nil {
			return result{Stage: "setup", Err: fmt.Sprintf("premount %s: %v", p, err)}
		}
	}
	c := &sc.Config
	if err := Prepare(c); err != nil {
		return result{Stage: "prepare", Err: err.Error()}
	}
	if err := Pivot(c); err != nil {
		return result{Stage: "pivot", Err: err.Error()}
	}
	if err := Finalize(c); err != nil {
		return result{Stage: "finalize", Err: err.Error()}
	}
	var res result
	for _, cmdline := range sc.Commands {
		cmd := exec.Command("/bin/sh", "-c", cmdline)
		cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin"}
		cmd.Stdin = strings.NewReader("") // a pipe: the container may have no /dev/null
		b, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else {
				b = append(b, []byte(err.Error())...)
			}
		}
		res.Outputs = append(res.Outputs, cmdResult{Cmd: cmdline, Out: string(b), Exit: code})
	}
	return res
}

// nsOpts are the namespaces a scenario's child gets besides mount and pid.
type nsOpts struct {
	user, cgroup, net, ipc bool
}

// runScenario runs sc in a child in new namespaces and returns its result.
// The child failing to report at all fails the test.
func runScenario(t *testing.T, sc scenario, ns nsOpts) result {
	t.Helper()
	f := filepath.Join(t.TempDir(), "scenario.json")
	data, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+f)
	cmd.ExtraFiles = []*os.File{w}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID)
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if ns.user {
		flags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		attr.GidMappingsEnableSetgroups = true
	}
	if ns.cgroup {
		flags |= unix.CLONE_NEWCGROUP
	}
	if ns.net {
		flags |= unix.CLONE_NEWNET
	}
	if ns.ipc {
		flags |= unix.CLONE_NEWIPC
	}
	attr.Cloneflags = flags
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatalf("start child: %v", err)
	}
	w.Close()
	report, readErr := io.ReadAll(r)
	waitErr := cmd.Wait()
	if waitErr != nil || readErr != nil {
		t.Fatalf("child failed: %v %v\n%s", waitErr, readErr, stderr.String())
	}
	var res result
	if err := json.Unmarshal(report, &res); err != nil {
		t.Fatalf("child report %q: %v\n%s", report, err, stderr.String())
	}
	for _, o := range res.Outputs {
		t.Logf("$ %s\n%s[exit %d]", o.Cmd, o.Out, o.Exit)
	}
	return res
}

// mustSucceed fails the test unless the whole scenario ran.
func mustSucceed(t *testing.T, res result) {
	t.Helper()
	if res.Stage != "" {
		t.Fatalf("%s failed: %s", res.Stage, res.Err)
	}
}

// requireRoot skips (or, in CI, fails) a test that needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "it creates mount namespaces")
}

// busybox returns the host's static busybox, installing Debian's
// busybox-static when it is missing.
func busybox(t *testing.T) string {
	t.Helper()
	const bb = "/bin/busybox"
	if _, err := os.Stat(bb); err == nil {
		return bb
	}
	for _, args := range [][]string{{"apt-get", "update", "-qq"}, {"apt-get", "install", "-y", "-qq", "busybox-static"}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("busybox missing and %s failed: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := os.Stat(bb); err != nil {
		t.Fatalf("busybox-static installed but %s missing: %v", bb, err)
	}
	return bb
}

// newRootfs builds a minimal busybox root filesystem in a temporary
// directory and returns its resolved path.
func newRootfs(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	bb := busybox(t)
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "root", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), in, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	return resolved
}

// defaultMounts are the mounts Docker's default spec gives a container.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
	}
}

func newSpec(mounts ...specs.Mount) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Mounts:  mounts,
		Linux:   &specs.Linux{},
	}
}

// mountsAt returns the mounts at mount point mp in a mountinfo text, the
// top-most last.
func mountsAt(t *testing.T, mountinfo, mp string) []mountInfo {
	t.Helper()
	ms, err := parseMountInfo(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatalf("parse mountinfo: %v\n%s", err, mountinfo)
	}
	var out []mountInfo
	for _, m := range ms {
		if m.Mountpoint == mp {
			out = append(out, m)
		}
	}
	return out
}

// topMount returns the top-most mount at mp, failing the test if none.
func topMount(t *testing.T, mountinfo, mp string) mountInfo {
	t.Helper()
	ms := mountsAt(t, mountinfo, mp)
	if len(ms) == 0 {
		t.Fatalf("no mount at %s in container mountinfo:\n%s", mp, mountinfo)
	}
	return ms[len(ms)-1]
}

// hasOpts reports whether the comma-separated list has every wanted option.
func hasOpts(list string, want ...string) bool {
	have := map[string]bool{}
	for _, o := range strings.Split(list, ",") {
		have[o] = true
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

func wantOpts(t *testing.T, m mountInfo, want ...string) {
	t.Helper()
	if !hasOpts(m.Options, want...) {
		t.Errorf("mount at %s has options %q, want %v", m.Mountpoint, m.Options, want)
	}
}

func mountTmpfs(dir string) error {
	return unix.Mount("berth-locked", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOATIME, "size=1m")
}

func unmount(dir string) error { return unix.Unmount(dir, 0) }
