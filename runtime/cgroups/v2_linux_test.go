package cgroups

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const v2ChildEnv = "BERTH_CGROUPS_V2_CHILD"

// TestUnifiedHierarchy exercises the cgroup v2 code paths on any host: it
// re-executes this test binary (TestUnifiedChild) in a mount namespace of
// its own, where a fresh cgroup2 mount is the hierarchy root the v2 code
// works on. On a hybrid host that hierarchy holds only the controllers not
// bound to v1; the child runs every test whose controllers are there and
// logs, by name, the ones it could not run.
func TestUnifiedHierarchy(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnifiedChild$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), v2ChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	t.Logf("cgroup2 child:\n%s", out)
	if err != nil {
		t.Fatalf("cgroup2 child failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestUnifiedChild") {
		t.Fatal("cgroup2 child did not run its tests")
	}
}

// TestUnifiedChild is TestUnifiedHierarchy's child (Go mounts / private in
// the new mount namespace before running it).
func TestUnifiedChild(t *testing.T) {
	if os.Getenv(v2ChildEnv) == "" {
		t.Skip("runs inside TestUnifiedHierarchy, in a mount namespace of its own")
	}
	mnt, err := os.MkdirTemp("", "berth-cg2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(mnt) })
	if err := unix.Mount("berth-cg2", mnt, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Fatalf("mount a cgroup2 hierarchy: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })

	// Create enables the root's controllers for its children; put the
	// root back as it was once the test groups are gone.
	rootCtl := filepath.Join(mnt, "cgroup.subtree_control")
	before := strings.Fields(read(t, rootCtl))
	t.Cleanup(func() {
		for _, c := range strings.Fields(read(t, rootCtl)) {
			if !slices.Contains(before, c) {
				if err := os.WriteFile(rootCtl, []byte("-"+c), 0); err != nil {
					t.Errorf("restore the root's cgroup.subtree_control: %v", err)
				}
			}
		}
	})
	parent := fmt.Sprintf("berth-test-%08x", rand.Uint32())
	t.Cleanup(func() {
		if err := unix.Rmdir(filepath.Join(mnt, parent)); err != nil && err != unix.ENOENT {
			t.Errorf("remove %s: %v", parent, err)
		}
	})
	mk := func(t *testing.T) *Manager {
		t.Helper()
		m, err := NewUnified(mnt, fmt.Sprintf("/%s/c%08x", parent, rand.Uint32()))
		if err != nil {
			t.Fatal(err)
		}
		if !m.Unified() || m.v2Root() != mnt {
			t.Fatalf("manager %v does not work on %s", m.Paths(), mnt)
		}
		return created(t, m)
	}
	avail := strings.Fields(read(t, filepath.Join(mnt, "cgroup.controllers")))
	t.Logf("controllers of this cgroup2 hierarchy: %q", avail)

	for _, ht := range hostTests {
		var missing []string
		for _, c := range ht.needs {
			if !slices.Contains(avail, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			t.Logf("NOT VERIFIED on cgroup v2 here: %s (needs the %s controller, which this host binds to v1)", ht.name, strings.Join(missing, ", "))
			continue
		}
		t.Run(ht.name, func(t *testing.T) { ht.run(t, mk) })
	}

	t.Run("ControllersEnabled", func(t *testing.T) {
		m := mk(t)
		got := strings.Fields(read(t, filepath.Join(m.paths[""], "cgroup.controllers")))
		for _, c := range avail {
			if !slices.Contains(got, c) {
				t.Errorf("controller %s not enabled for the container's group (it has %q)", c, got)
			}
		}
	})

	t.Run("Placement", func(t *testing.T) {
		m := mk(t)
		p := startIn(t, m, "echo ready; sleep 30; echo done")
		waitOutput(t, p, "ready")
		pids, err := m.Pids()
		if err != nil || !slices.Contains(pids, p.cmd.Process.Pid) {
			t.Errorf("Pids %v (%v) lacks %d", pids, err, p.cmd.Process.Pid)
		}
		rel, _ := filepath.Rel(mnt, m.paths[""])
		own := read(t, "/proc/"+strconv.Itoa(p.cmd.Process.Pid)+"/cgroup")
		if !strings.Contains(own, "0::/"+rel+"\n") && !strings.HasSuffix(own, "0::/"+rel) {
			t.Errorf("/proc/pid/cgroup:\n%s\nwant 0::/%s", own, rel)
		}
	})

	t.Run("CPUStats", func(t *testing.T) {
		m := mk(t)
		p := startIn(t, m, "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo ready; sleep 30; echo done")
		waitOutput(t, p, "ready")
		s, err := m.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.CPU.Usage.Total < 10_000_000 || s.CPU.Usage.User == 0 {
			t.Errorf("cpu usage %+v: want the busy loop's time", s.CPU.Usage)
		}
	})

	t.Run("Unified", func(t *testing.T) {
		m := mk(t)
		dir := m.paths[""]
		if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"cgroup.max.descendants": "3", "cgroup.max.depth": "2"}}); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(dir, "cgroup.max.descendants")) + " " + read(t, filepath.Join(dir, "cgroup.max.depth")); got != "3 2" {
			t.Errorf("cgroup.max.descendants, depth = %s, want 3 2", got)
		}
		// The limit holds: a fourth descendant is refused.
		for i := 0; i < 4; i++ {
			err := os.Mkdir(filepath.Join(dir, fmt.Sprintf("sub%d", i)), 0o755)
			if (i < 3) != (err == nil) {
				t.Errorf("mkdir descendant %d: %v", i, err)
			}
		}
		for i := 0; i < 3; i++ {
			unix.Rmdir(filepath.Join(dir, fmt.Sprintf("sub%d", i)))
		}
		for key, words := range map[string][]string{
			"../escape":        {"not a cgroup file name"},
			"cgroup.berth-bad": {"no such file"},
		} {
			err := m.Set(&specs.LinuxResources{Unified: map[string]string{key: "1"}})
			for _, w := range words {
				if err == nil || !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), "unified") {
					t.Errorf("unified key %q: error %v, want one naming the key and %q", key, err, w)
				}
			}
		}
	})

	t.Run("MissingControllers", func(t *testing.T) {
		m := mk(t)
		for controller, r := range map[string]*specs.LinuxResources{
			"memory": {Memory: &specs.LinuxMemory{Limit: i64p(64 << 20)}},
			"pids":   {Pids: &specs.LinuxPids{Limit: i64p(10)}},
			"cpu":    {CPU: &specs.LinuxCPU{Shares: u64p(512)}},
			"io":     {BlockIO: &specs.LinuxBlockIO{Weight: u16p(100)}},
		} {
			if slices.Contains(avail, controller) {
				continue
			}
			err := m.Set(r)
			if err == nil || !strings.Contains(err.Error(), "the "+controller+" controller is not available") {
				t.Errorf("%s without its controller: %v", controller, err)
			}
			uerr := m.Set(&specs.LinuxResources{Unified: map[string]string{controller + ".max": "1"}})
			if uerr == nil || !strings.Contains(uerr.Error(), controller) {
				t.Errorf("unified %s.max without the controller: %v", controller, uerr)
			}
		}
		if !slices.Contains(avail, "memory") {
			if _, err := m.OOMKillCount(); !errors.Is(err, ErrNoMemoryController) {
				t.Errorf("OOMKillCount: %v", err)
			}
			if _, err := m.NotifyOOM(t.Context()); !errors.Is(err, ErrNoMemoryController) {
				t.Errorf("NotifyOOM: %v", err)
			}
		}
	})

	if slices.Contains(avail, "hugetlb") {
		t.Run("Hugetlb", func(t *testing.T) {
			m := mk(t)
			dir := m.paths[""]
			sizes, err := hugepageSizes()
			if err != nil || len(sizes) == 0 {
				t.Fatalf("huge page sizes %v: %v", sizes, err)
			}
			size := sizes[0]
			kb, _ := HugepageKB(size)
			limit := 4 * kb << 10
			if err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: size, Limit: limit}}}); err != nil {
				t.Fatal(err)
			}
			files := []string{"hugetlb." + size + ".max"}
			if exists(dir, "hugetlb."+size+".rsvd.max") {
				files = append(files, "hugetlb."+size+".rsvd.max")
			}
			for _, f := range files {
				if got := read(t, filepath.Join(dir, f)); got != strconv.FormatUint(limit, 10) {
					t.Errorf("%s = %s, want %d", f, got, limit)
				}
			}
			// unified is applied last and wins over the converted value.
			if err := m.Set(&specs.LinuxResources{
				HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: size, Limit: limit}},
				Unified:        map[string]string{"hugetlb." + size + ".max": strconv.FormatUint(2*kb<<10, 10)},
			}); err != nil {
				t.Fatal(err)
			}
			if got := read(t, filepath.Join(dir, "hugetlb."+size+".max")); got != strconv.FormatUint(2*kb<<10, 10) {
				t.Errorf("hugetlb.%s.max = %s after unified, want %d", size, got, 2*kb<<10)
			}
			s, err := m.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Hugetlb[size]; !ok {
				t.Errorf("stats lack hugetlb %s: %+v", size, s.Hugetlb)
			}
		})
	} else {
		t.Log("NOT VERIFIED on cgroup v2 here: Hugetlb (no hugetlb controller in this hierarchy)")
	}
}
