// Package e2e runs the real `berth` binary as a user does, on the images
// in ../shared/images, and checks what a user would check. The tests need
// root (CI is root): without it they fail under CI=true and skip elsewhere.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

var (
	berthBin string // the berth under test
	root     string // --root of the tests' store
	runDir   string // --run-dir
	shared   string // ../shared/images
	// linkPrefix names this root's veths and user bridges.
	linkPrefix = "berth-unknown"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if code, ok := testutil.MainRequiresRoot("e2e tests"); !ok {
		return code
	}
	tmp, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Like /run: searchable, so that a container's root under --userns
	// reaches its root filesystem.
	if err := os.Chmod(tmp, 0o711); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, runDir = filepath.Join(tmp, "root"), filepath.Join(tmp, "run")
	// The tests' own bridge and nftables table, apart from a berth the
	// host may run.
	os.Setenv("BERTH_BRIDGE", "berthe2e0")
	os.Setenv("BERTH_NFT_TABLE", "berth_e2e")
	os.Setenv("BERTH_CGROUP_PARENT", "/berth-e2e")
	if berthBin, err = testutil.Binary("BERTH", tmp, "berth"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if shared, err = testutil.FindSharedImages(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, img := range []string{"busybox:1.35", "layers:1", "web:1"} {
		out, err := exec.Command(berthBin, "--root", root, "--run-dir", runDir, "pull", "-q", "oci:"+filepath.Join(shared, "oci")+":"+img).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pull %s: %v\n%s", img, err, out)
			return 1
		}
	}
	if out, err := exec.Command(berthBin, "--root", root, "--run-dir", runDir, "info", "--format", "{{.NetworkLinkPrefix}}").Output(); err == nil {
		linkPrefix = strings.TrimSpace(string(out))
	}
	before := leakSnapshot()
	code := m.Run()
	// Remove what the tests left (containers, images, networks and their
	// bridges and rules), then check the host is as it was.
	if out, err := exec.Command(berthBin, "--root", root, "--run-dir", runDir, "system", "reset", "--force").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "system reset: %v\n%s", err, out)
		code = 1
	}
	time.Sleep(200 * time.Millisecond)
	// The tests' cgroup parent, empty once every container is gone.
	if dirs, err := filepath.Glob("/sys/fs/cgroup/*/berth-e2e"); err == nil {
		for _, d := range dirs {
			syscall.Rmdir(d)
		}
	}
	leaks := testutil.Added(before, leakSnapshot())
	if exec.Command("ip", "link", "show", "berthe2e0").Run() == nil {
		leaks = append(leaks, "link berthe2e0 (the default bridge, after system reset)")
	}
	if len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the tests left these behind:\n  %s\n", strings.Join(leaks, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	return code
}

// result is a finished berth command.
type result struct {
	out, err string
	code     int
}

// berth runs berth with the tests' root and returns its output and exit
// code.
func berth(t testing.TB, args ...string) result {
	t.Helper()
	return berthIn(t, nil, args...)
}

func berthIn(t testing.TB, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"--root", root, "--run-dir", runDir}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// must runs berth and fails the test unless it exits 0.
func must(t testing.TB, args ...string) string {
	t.Helper()
	r := berth(t, args...)
	if r.code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// runDetached starts a container and removes it at the end of the test.
func runDetached(t testing.TB, args ...string) string {
	t.Helper()
	id := strings.TrimSpace(must(t, append([]string{"run", "-d"}, args...)...))
	t.Cleanup(func() { berth(t, "rm", "-f", id) })
	return id
}

// inspect reads one field of a container with a Go template.
func inspect(t testing.TB, id, tmpl string) string {
	t.Helper()
	return strings.TrimSpace(must(t, "inspect", "--format", tmpl, id))
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leakSnapshot lists what berth made on the host: mounts, cgroups,
// container and supervisor processes.
func leakSnapshot() map[string]bool {
	out := map[string]bool{}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && (strings.HasPrefix(f[4], root) || strings.HasPrefix(f[4], runDir)) {
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
		// The engine's containers: 64-hex ids under a berth parent (the
		// runtime's own tests, which may run meanwhile, use names).
		if strings.Contains(p, "/berth-e2e/") {
			out["cgroup "+p] = true
		}
		return nil
	})
	if links, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, l := range strings.Split(string(links), "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], linkPrefix) {
				out["link "+strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")] = true
			}
		}
	}
	if tables, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		for _, l := range strings.Split(string(tables), "\n") {
			if strings.Contains(l, "berth_e2e") {
				out["nft "+l] = true
			}
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
			mine := bytes.Contains(cg, []byte("/berth-e2e/"))
			cwd, _ := os.Readlink("/proc/" + e.Name() + "/cwd")
			if (mine && bytes.HasPrefix(cmd, []byte("berth-runc\x00init"))) || bytes.Contains(cmd, []byte(root)) ||
				(bytes.HasPrefix(cmd, []byte("berth-supervisor")) && strings.HasPrefix(cwd, runDir)) {
				out["process "+e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " ")] = true
			}
		}
	}
	return out
}
