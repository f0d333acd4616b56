package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// leftoverContainers lists the container ids with idPrefix that a runtime
// still keeps in its state directory (runc and runc-compatible runtimes keep
// one directory per container there).
func leftoverContainers(stateDir, idPrefix string) []string {
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), idPrefix) {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

// forceDelete runs `<runtime> --root <stateDir> delete -f <id>`.
func forceDelete(runtimePath, stateDir, id string) error {
	out, err := exec.Command(runtimePath, "--root", stateDir, "delete", "-f", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s delete -f %s: %w: %s", filepath.Base(runtimePath), id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// cgroupsNamed finds cgroup directories under /sys/fs/cgroup whose name
// starts with prefix, in every hierarchy (v1 controllers nest them under
// this process's own cgroup or at the top, v2 under unified).
func cgroupsNamed(prefix string) []string {
	var found []string
	_ = filepath.WalkDir(cgroupMount, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && path != cgroupMount {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			found = append(found, path)
			return fs.SkipDir
		}
		return nil
	})
	return found
}

// removeCgroup removes a cgroup directory and any child cgroups, deepest
// first. A cgroup that still has processes cannot be removed; the error says
// so.
func removeCgroup(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		var err error
		for range 20 { // the kernel may need a moment after the last task exits
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) || !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists mount points, from this process's mount table, that lie
// under dir or whose path contains marker.
func mountsUnder(dir, marker string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") || (marker != "" && strings.Contains(mp, marker)) {
			found = append(found, mp)
		}
	}
	// Deepest first, so unmounting in order works.
	sort.Slice(found, func(i, j int) bool { return len(found[i]) > len(found[j]) })
	return found
}

// unescapeMountinfo decodes the \ooo octal escapes mountinfo uses.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type process struct {
	pid     int
	cmdline string
}

// childProcesses lists live processes whose parent is this process.
func childProcesses() []process {
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var found []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStatus(pid)
		if err != nil || st.ppid != self {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		found = append(found, process{pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))})
	}
	return found
}
