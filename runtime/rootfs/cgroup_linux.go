package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupBind is one cgroup v1 hierarchy to bind under a cgroup mount.
type cgroupBind struct {
	Name   string // directory under the mount: the host mount point's base name ("cpu,cpuacct")
	Source string // host directory of the container's cgroup in that hierarchy
}

// cgroupLink is a symlink under a cgroup mount, Name -> Target, for
// co-mounted controllers ("cpu" -> "cpu,cpuacct").
type cgroupLink struct {
	Name, Target string
}

// mountCgroup performs a spec mount of type "cgroup". On cgroup v1 it is a
// tmpfs holding one read-only (unless "rw") bind mount per hierarchy, plus
// symlinks for co-mounted controllers, like /sys/fs/cgroup on a v1 host. On
// cgroup v2 it is a fresh cgroup2 mount when the container has its own
// cgroup namespace, otherwise a bind of the container's cgroup directory.
func (r *rootCtx) mountCgroup(m specs.Mount, dest string, opts MountOptions) error {
	mounts, err := readMountInfo()
	if err != nil {
		return err
	}
	paths := r.c.CgroupPaths
	if len(paths) == 0 {
		own, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return fmt.Errorf("find own cgroups: %w", err)
		}
		paths = cgroupPathsFromProc(string(own), mounts)
		if !hostHasCgroupV1(mounts) {
			// Pure v2 host: only the unified entry matters.
			paths = map[string]string{"": paths[""]}
		}
	}
	v1 := false
	for k := range paths {
		if k != "" {
			v1 = true
		}
	}
	if !v1 {
		return r.mountCgroup2(m, dest, opts, paths[""])
	}

	binds, links := cgroupV1Binds(paths, mounts)
	tmpfs := MountOptions{
		Flags:       unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC,
		Data:        "mode=755",
		Propagation: opts.Propagation,
	}
	if err := r.mountOne(mountReq{source: "tmpfs", fstype: "tmpfs", dest: dest, opts: tmpfs}); err != nil {
		return fmt.Errorf("tmpfs for cgroup hierarchies: %w", err)
	}
	bopts := ParseMountOptions(cgroupBindOptions(m.Options))
	for _, b := range binds {
		sub := path.Join(dest, b.Name)
		if err := r.mountOne(mountReq{source: b.Source, dest: sub, opts: bopts, bind: true}); err != nil {
			return fmt.Errorf("bind %s on %s: %w", b.Source, sub, err)
		}
	}
	if len(links) == 0 {
		return nil
	}
	dir, _, err := r.prepareDest(dest, true)
	if err != nil {
		return err
	}
	defer dir.Close()
	for _, l := range links {
		if err := unix.Symlinkat(l.Target, int(dir.Fd()), l.Name); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s -> %s: %w", path.Join(dest, l.Name), l.Target, err)
		}
	}
	return nil
}

// cgroupBindOptions are the options of each v1 hierarchy bind: the cgroup
// mount's own options, recursive bind, read-only unless "rw" is given.
func cgroupBindOptions(opts []string) []string {
	out := append([]string{"rbind"}, opts...)
	rw := false
	for _, o := range opts {
		if o == "rw" {
			rw = true
		}
	}
	if !rw {
		out = append(out, "ro")
	}
	return out
}

func (r *rootCtx) mountCgroup2(m specs.Mount, dest string, opts MountOptions, unified string) error {
	if r.c.CgroupNS || unified == "" {
		err := r.mountOne(mountReq{source: "cgroup", fstype: "cgroup2", dest: dest, opts: opts})
		if err == nil || unified == "" || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
			return err
		}
		// A user namespace may be refused a fresh cgroup2: fall back to
		// the bind, as runc does.
	}
	bopts := ParseMountOptions(append([]string{"rbind"}, m.Options...))
	return r.mountOne(mountReq{source: unified, dest: dest, opts: bopts, bind: true})
}

// cgroupV1Binds decides which hierarchies a v1 cgroup mount holds. Each
// controller's directory is matched to the host cgroup mount it lies in; the
// directory under the container's mount is named after that mount point
// ("cpu,cpuacct", "systemd"), and every controller whose name differs gets a
// symlink to it. The result is sorted by name.
func cgroupV1Binds(paths map[string]string, mounts []mountInfo) ([]cgroupBind, []cgroupLink) {
	keys := make([]string, 0, len(paths))
	for k := range paths {
		if k != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var (
		binds []cgroupBind
		links []cgroupLink
		seen  = map[string]bool{}
		names = map[string]bool{}
	)
	for _, k := range keys {
		src := filepath.Clean(paths[k])
		name := strings.TrimPrefix(k, "name=")
		var best mountInfo
		found := false
		for _, mi := range mounts {
			if mi.FSType != "cgroup" || !isUnder(src, mi.Mountpoint) {
				continue
			}
			if !found || len(mi.Mountpoint) >= len(best.Mountpoint) {
				best, found = mi, true
			}
		}
		hier := name
		if found {
			hier = filepath.Base(best.Mountpoint)
		}
		if !seen[hier] {
			seen[hier] = true
			binds = append(binds, cgroupBind{Name: hier, Source: src})
		}
		names[name] = true
		for _, part := range strings.Split(hier, ",") {
			names[part] = true
		}
	}
	sort.Slice(binds, func(i, j int) bool { return binds[i].Name < binds[j].Name })
	for _, b := range binds {
		for _, n := range sortedKeys(names) {
			if n == b.Name || seen[n] {
				continue
			}
			if strings.Contains(b.Name, ",") && containsPart(b.Name, n) {
				links = append(links, cgroupLink{Name: n, Target: b.Name})
			}
		}
	}
	return binds, links
}

func containsPart(list, part string) bool {
	for _, p := range strings.Split(list, ",") {
		if p == part {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cgroupPathsFromProc maps each of the process's cgroups (the text of
// /proc/self/cgroup) to its host directory, using the cgroup mounts: key is
// the controller list ("memory", "cpu,cpuacct", "name=systemd"), "" for v2.
func cgroupPathsFromProc(procCgroup string, mounts []mountInfo) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, cg := parts[1], parts[2]
		for _, mi := range mounts {
			if ctrls == "" && mi.FSType != "cgroup2" {
				continue
			}
			if ctrls != "" && (mi.FSType != "cgroup" || !superHasAll(mi.SuperOptions, ctrls)) {
				continue
			}
			if !isUnder(cg, mi.Root) {
				continue
			}
			rel := strings.TrimPrefix(cg, mi.Root)
			out[ctrls] = filepath.Join(mi.Mountpoint, rel)
			break
		}
	}
	return out
}

func superHasAll(super, ctrls string) bool {
	have := map[string]bool{}
	for _, o := range strings.Split(super, ",") {
		have[o] = true
	}
	for _, c := range strings.Split(ctrls, ",") {
		if !have[c] {
			return false
		}
	}
	return true
}

func hostHasCgroupV1(mounts []mountInfo) bool {
	for _, m := range mounts {
		if m.FSType == "cgroup" {
			return true
		}
	}
	return false
}
