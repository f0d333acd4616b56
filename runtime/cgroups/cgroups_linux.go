// Package cgroups owns a container's control groups on cgroup v1, v2 and
// hybrid hosts (detected at run time): placement (New, Create, Add, Pids),
// resource limits (Set: every resource of the OCI runtime spec, with runc's
// v1 to v2 conversions), statistics (Stats), OOM accounting and notification
// (OOMKillCount, NotifyOOM) and removal (Destroy).
//
// On a hybrid host the container uses the v1 hierarchies only, as runc does;
// v2-only settings (the unified map) are refused there. The v2 code paths
// take the hierarchy's mount point as a parameter (NewUnified), so they can
// be exercised against any cgroup2 mount.
//
// v2 device rules are an eBPF program that this package generates and loads
// itself (bpf.go, ebpf_linux.go): the program is a few dozen instructions,
// and generating it directly keeps a general eBPF library (and its start-up
// and size cost) out of the static runtime binary.
//
// It imports nothing from berth.
package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Root is where cgroup hierarchies are mounted.
const Root = "/sys/fs/cgroup"

// Mode is the cgroup layout of the host.
type Mode int

const (
	// Legacy is cgroup v1 only.
	Legacy Mode = iota
	// Hybrid is cgroup v1 controllers plus a v2 hierarchy at /sys/fs/cgroup/unified.
	Hybrid
	// Unified is pure cgroup v2.
	Unified
)

func (m Mode) String() string {
	return [...]string{"v1", "hybrid", "v2"}[m]
}

// Detect reports the host's cgroup layout.
func Detect() Mode {
	var st unix.Statfs_t
	if unix.Statfs(Root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return Unified
	}
	if unix.Statfs(filepath.Join(Root, "unified"), &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return Hybrid
	}
	return Legacy
}

// Manager is the cgroup of one container: one directory per v1 hierarchy, or
// one directory on v2. The key "" is the v2 directory.
type Manager struct {
	paths map[string]string
	// root2 is the mount point of the v2 hierarchy holding paths[""]
	// ("" until needed: it is found by walking up from the directory).
	root2 string
}

// Warn receives notes about settings that were ignored (kernel memory on
// v2, ...). The runtime points it at its log.
var Warn = func(format string, a ...any) {}

// hierarchies returns the v1 hierarchies mounted on this host (key: the
// mount's directory name under /sys/fs/cgroup, e.g. "cpu,cpuacct" is
// reported by its directory), and, on a v2 host, just "".
func hierarchies(mode Mode) (map[string]string, error) {
	if mode == Unified {
		return map[string]string{"": Root}, nil
	}
	entries, err := os.ReadDir(Root)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "unified" {
			continue
		}
		dir := filepath.Join(Root, e.Name())
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
			continue
		}
		out[e.Name()] = dir
	}
	return out, nil
}

// ownCgroups parses /proc/self/cgroup: v1 controller list -> path, and "" -> v2 path.
func ownCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

// New resolves cgroupsPath for this host without creating anything. An
// absolute path is relative to each hierarchy's root; a relative one to the
// caller's own cgroup in that hierarchy, as runc does.
func New(cgroupsPath string) (*Manager, error) {
	if strings.Contains(cgroupsPath, "..") {
		clean := filepath.Clean("/" + cgroupsPath)
		if strings.HasPrefix(cgroupsPath, "/") && clean != cgroupsPath {
			return nil, fmt.Errorf("cgroupsPath %q: must be a clean path", cgroupsPath)
		}
		for _, el := range strings.Split(cgroupsPath, "/") {
			if el == ".." {
				return nil, fmt.Errorf("cgroupsPath %q: must not contain ..", cgroupsPath)
			}
		}
	}
	mode := Detect()
	hier, err := hierarchies(mode)
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	var own map[string]string
	if !filepath.IsAbs(cgroupsPath) {
		if own, err = ownCgroups(); err != nil {
			return nil, fmt.Errorf("read own cgroup: %w", err)
		}
	}
	m := &Manager{paths: map[string]string{}}
	if mode == Unified {
		m.root2 = Root
	}
	for name, dir := range hier {
		p := cgroupsPath
		if own != nil {
			key := name
			if i := strings.IndexByte(name, ','); i > 0 {
				key = name[:i]
			}
			if name != "" && strings.HasPrefix(name, "name=") {
				key = name
			}
			if base, ok := own[key]; ok {
				p = filepath.Join(base, cgroupsPath)
			} else if base, ok := own["name="+key]; ok {
				p = filepath.Join(base, cgroupsPath)
			} else {
				p = filepath.Join("/", cgroupsPath)
			}
		}
		m.paths[name] = filepath.Join(dir, p)
	}
	return m, nil
}

// NewUnified resolves cgroupsPath in the cgroup v2 hierarchy mounted at
// root, whatever the host's layout: an absolute path is taken from root, a
// relative one from the caller's own v2 cgroup.
func NewUnified(root, cgroupsPath string) (*Manager, error) {
	if strings.Contains(cgroupsPath, "..") {
		for _, el := range strings.Split(cgroupsPath, "/") {
			if el == ".." {
				return nil, fmt.Errorf("cgroupsPath %q: must not contain ..", cgroupsPath)
			}
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("cgroup2 root %s: %w", root, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, fmt.Errorf("%s is not a cgroup2 mount", root)
	}
	p := filepath.Join("/", cgroupsPath)
	if !filepath.IsAbs(cgroupsPath) {
		own, err := ownCgroups()
		if err != nil {
			return nil, fmt.Errorf("read own cgroup: %w", err)
		}
		p = filepath.Join("/", own[""], cgroupsPath)
	}
	return &Manager{paths: map[string]string{"": filepath.Join(root, p)}, root2: root}, nil
}

// Load returns a manager for paths saved earlier with Paths.
func Load(paths map[string]string) *Manager {
	return &Manager{paths: paths}
}

// Unified reports whether the manager works on a cgroup v2 directory.
func (m *Manager) Unified() bool {
	_, ok := m.paths[""]
	return ok
}

// v1 returns the directory of the v1 hierarchy that holds controller
// (hierarchies are keyed by their mount's directory name, e.g. "cpu,cpuacct").
func (m *Manager) v1(controller string) (string, bool) {
	if d, ok := m.paths[controller]; ok {
		return d, true
	}
	for k, d := range m.paths {
		for _, c := range strings.Split(k, ",") {
			if c == controller {
				return d, true
			}
		}
	}
	return "", false
}

// v2Root returns the mount point of the v2 hierarchy holding dir: the
// highest ancestor on the same cgroup2 file system.
func (m *Manager) v2Root() string {
	if m.root2 != "" {
		return m.root2
	}
	dir := m.paths[""]
	var st unix.Stat_t
	// Start from the first ancestor that exists.
	for unix.Stat(dir, &st) != nil && dir != "/" {
		dir = filepath.Dir(dir)
	}
	dev := st.Dev
	for dir != "/" {
		parent := filepath.Dir(dir)
		var fs unix.Statfs_t
		var pst unix.Stat_t
		if unix.Statfs(parent, &fs) != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC ||
			unix.Stat(parent, &pst) != nil || pst.Dev != dev {
			break
		}
		dir = parent
	}
	m.root2 = dir
	return dir
}

// Paths returns the cgroup directories, keyed by hierarchy ("" on v2).
func (m *Manager) Paths() map[string]string { return m.paths }

// Apply creates the cgroup directories and moves pid into them.
func (m *Manager) Apply(pid int) error {
	if err := m.Create(); err != nil {
		return err
	}
	return m.Add(pid)
}

// Create makes the cgroup directories (and fills an empty v1 cpuset). On v2
// it enables, in each ancestor's cgroup.subtree_control, the controllers
// that ancestor offers, so that the container's group has their files.
func (m *Manager) Create() error {
	for name, dir := range m.paths {
		if name == "" {
			if err := createV2(m.v2Root(), dir); err != nil {
				return err
			}
			continue
		}
		err := os.MkdirAll(dir, 0o755)
		if errors.Is(err, os.ErrNotExist) {
			// A parent removed by a concurrent delete: once more.
			err = os.MkdirAll(dir, 0o755)
		}
		if err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if strings.Contains(name, "cpuset") {
			if err := fillCpuset(dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// Add moves pid into the cgroup. The kernel makes the first move wait
// for an RCU grace period (milliseconds), so callers overlap it with other
// work where they can.
func (m *Manager) Add(pid int) error {
	p := []byte(strconv.Itoa(pid))
	for _, dir := range m.paths {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), p, 0); err != nil {
			return fmt.Errorf("add pid %d to cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

// TaskFiles opens, for writing, the v1 "tasks" file of every hierarchy, so
// that a process can move itself in: writing "0" to a v1 tasks file moves
// only the writing thread, and the kernel then skips its global
// cgroup_threadgroup_rwsem, whose write side waits for an RCU grace period
// (measured: 16 ms on a busy 2-core host, against 0.08 ms per tasks write).
// For a single-threaded process (the init's C constructor, before the Go
// runtime starts any thread) moving its one thread moves the whole
// process. The kernel checks permissions against the opener, so the files
// can be opened here and written from inside new namespaces. It returns
// ok=false, and nothing open, when the manager has a cgroup v2 directory
// (v2 has no per-thread move outside threaded groups): callers then use Add.
func (m *Manager) TaskFiles() (files []*os.File, ok bool, err error) {
	if m.Unified() || len(m.paths) == 0 {
		return nil, false, nil
	}
	for _, dir := range m.paths {
		f, err := os.OpenFile(filepath.Join(dir, "tasks"), os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, o := range files {
				o.Close()
			}
			return nil, false, fmt.Errorf("open cgroup %s: %w", dir, err)
		}
		files = append(files, f)
	}
	return files, true, nil
}

// fillCpuset copies cpus and mems from the nearest ancestor that has them: a
// new v1 cpuset cgroup starts empty and refuses tasks.
func fillCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(dir, f), err)
		}
		if len(bytes.TrimSpace(cur)) > 0 {
			continue
		}
		// Walk up to the first ancestor with a value, then fill downwards.
		var chain []string
		p := dir
		var val []byte
		for {
			chain = append(chain, p)
			p = filepath.Dir(p)
			v, err := os.ReadFile(filepath.Join(p, f))
			if err != nil {
				return fmt.Errorf("read %s: %w", filepath.Join(p, f), err)
			}
			if len(bytes.TrimSpace(v)) > 0 {
				val = v
				break
			}
		}
		for i := len(chain) - 1; i >= 0; i-- {
			if err := os.WriteFile(filepath.Join(chain[i], f), val, 0); err != nil {
				return fmt.Errorf("write %s: %w", filepath.Join(chain[i], f), err)
			}
		}
	}
	return nil
}

// pidsDir picks the directory whose cgroup.procs lists the container's
// processes: the v2 one, else a v1 controller every host has.
func (m *Manager) pidsDir() string {
	for _, k := range []string{"", "pids", "memory", "cpu,cpuacct", "freezer", "devices"} {
		if d, ok := m.paths[k]; ok {
			return d
		}
	}
	keys := make([]string, 0, len(m.paths))
	for k := range m.paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return ""
	}
	return m.paths[keys[0]]
}

// Pids lists every process in the cgroup and its descendants.
func (m *Manager) Pids() ([]int, error) {
	dir := m.pidsDir()
	if dir == "" {
		return nil, nil
	}
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		f, err := os.Open(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if n, err := strconv.Atoi(strings.TrimSpace(s.Text())); err == nil {
				pids = append(pids, n)
			}
		}
		return s.Err()
	})
	return pids, err
}

// Exists reports whether any of the directories is still there.
func (m *Manager) Exists() bool {
	for _, d := range m.paths {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

// Destroy removes the cgroup directories and any nested groups the
// container made, deepest first. A group that still has processes is
// reported as busy.
func (m *Manager) Destroy() error {
	// The hierarchies are independent and each rmdir waits on the
	// kernel (css offlining): remove them in parallel.
	errs := make([]error, 0, len(m.paths))
	ch := make(chan error, len(m.paths))
	for _, dir := range m.paths {
		go func() { ch <- removeTree(dir) }()
	}
	for range m.paths {
		if err := <-ch; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeTree(dir string) error {
	// Usually the group has no children and no tasks left: one rmdir.
	if err := unix.Rmdir(dir); err == nil || err == unix.ENOENT {
		return nil
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		var rerr error
		// A just-killed task can keep the group busy for a moment.
		for delay := time.Millisecond; ; delay *= 2 {
			rerr = unix.Rmdir(dirs[i])
			if rerr == nil || rerr == unix.ENOENT || rerr != unix.EBUSY || delay > 500*time.Millisecond {
				break
			}
			time.Sleep(delay)
		}
		if rerr != nil && rerr != unix.ENOENT {
			return fmt.Errorf("remove cgroup %s: %w", dirs[i], rerr)
		}
	}
	return nil
}

// createV2 makes dir under the cgroup2 mount root, one level at a time,
// enabling in every ancestor the controllers it offers.
func createV2(root, dir string) error {
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("cgroup %s is not under the cgroup2 mount %s", dir, root)
	}
	if rel == "." {
		return nil
	}
	cur := root
	for _, el := range strings.Split(rel, "/") {
		enableControllers(cur)
		cur = filepath.Join(cur, el)
		err := os.Mkdir(cur, 0o755)
		if errors.Is(err, os.ErrNotExist) {
			// A parent removed by a concurrent delete: make it again.
			return createV2(root, dir)
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", cur, err)
		}
	}
	return nil
}

// enableControllers turns on, for dir's children, every controller dir
// offers. Failures are left for Set to report: a controller that could not
// be enabled (dir has processes of its own, or is threaded) shows as a
// missing file when a limit needs it.
func enableControllers(dir string) {
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return
	}
	on, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	enabled := map[string]bool{}
	for _, c := range strings.Fields(string(on)) {
		enabled[c] = true
	}
	var missing []string
	for _, c := range strings.Fields(string(avail)) {
		if !enabled[c] {
			missing = append(missing, "+"+c)
		}
	}
	if len(missing) == 0 {
		return
	}
	file := filepath.Join(dir, "cgroup.subtree_control")
	if os.WriteFile(file, []byte(strings.Join(missing, " ")), 0) == nil {
		return
	}
	for _, c := range missing {
		os.WriteFile(file, []byte(c), 0)
	}
}
