package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Filesystem magic numbers from <linux/magic.h>.
const (
	cgroup2Magic = 0x63677270
	cgroup1Magic = 0x27e0eb
)

const cgroupMount = "/sys/fs/cgroup"

// describeMachine returns one line: cores, CPU model, memory, kernel and
// cgroup layout.
func describeMachine() string {
	var u syscall.Utsname
	kernel := "unknown"
	if err := syscall.Uname(&u); err == nil {
		kernel = utsString(u.Release[:])
	}
	parts := []string{fmt.Sprintf("%d cores", runtime.NumCPU())}
	if m := cpuModel(); m != "" {
		parts[0] += " (" + m + ")"
	}
	if kib := memTotalKiB(); kib > 0 {
		parts = append(parts, fmt.Sprintf("%.1f GiB RAM", float64(kib)/(1<<20)))
	}
	parts = append(parts, "kernel "+kernel, "cgroup "+cgroupLayout())
	return strings.Join(parts, ", ")
}

// loadAverage returns the 1-minute load average from /proc/loadavg: other
// work on the machine widens the spread of the timings.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// cgroupLayout classifies the cgroup hierarchy mounted at /sys/fs/cgroup.
func cgroupLayout() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupMount, &st); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if st.Type == cgroup2Magic {
		return "v2 (unified hierarchy at " + cgroupMount + ")"
	}
	var controllers []string
	var v2 string
	entries, _ := os.ReadDir(cgroupMount)
	for _, e := range entries {
		p := filepath.Join(cgroupMount, e.Name())
		var sub syscall.Statfs_t
		if err := syscall.Statfs(p, &sub); err != nil {
			continue
		}
		switch sub.Type {
		case cgroup2Magic:
			v2 = p
		case cgroup1Magic:
			controllers = append(controllers, e.Name())
		}
	}
	switch {
	case v2 != "" && len(controllers) > 0:
		return fmt.Sprintf("hybrid (v1: %s; v2 at %s)", strings.Join(controllers, ","), v2)
	case len(controllers) > 0:
		return "v1 (" + strings.Join(controllers, ",") + ")"
	case v2 != "":
		return "v2 at " + v2
	}
	return "none found"
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotalKiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// runtimeVersion returns the first line of `<path> --version`, or a note
// when the binary does not answer it.
func runtimeVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil || line == "" {
		return "version unknown"
	}
	return line
}
