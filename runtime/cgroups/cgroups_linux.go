// Package cgroups places container processes into control groups and removes
// those groups again, on cgroup v1, v2 and hybrid hosts (detected at run
// time).
//
// It owns only placement, listing and removal; resource limits, freezing
// and statistics plug in here (Manager grows Set, Freeze and Stats). It
// imports nothing from berth.
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
}

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

// Load returns a manager for paths saved earlier with Paths.
func Load(paths map[string]string) *Manager {
	return &Manager{paths: paths}
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

// Create makes the cgroup directories (and fills an empty v1 cpuset).
func (m *Manager) Create() error {
	for name, dir := range m.paths {
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
	var errs []error
	for _, dir := range m.paths {
		if err := removeTree(dir); err != nil {
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
