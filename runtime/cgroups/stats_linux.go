package cgroups

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats reads the container's resource usage. Controllers the host does not
// have leave their part empty.
func (m *Manager) Stats() (*Stats, error) {
	s := &Stats{}
	var err error
	if m.Unified() {
		err = statsV2(m.paths[""], s)
	} else {
		err = m.statsV1(s)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup stats: %w", err)
	}
	return s, nil
}

// statReader reads counters, remembering the first real error; a file
// the kernel does not have reads as 0.
type statReader struct {
	dir string
	err error
}

func (r *statReader) keep(err error) {
	if err != nil && !errors.Is(err, os.ErrNotExist) && r.err == nil {
		r.err = err
	}
}

func (r *statReader) str(file string) string {
	b, err := os.ReadFile(filepath.Join(r.dir, file))
	r.keep(err)
	return strings.TrimSpace(string(b))
}

// uint reads a single number; "max" and v1's "no limit" (the largest
// page-aligned int64) read as math.MaxUint64.
func (r *statReader) uint(file string) uint64 {
	s := r.str(file)
	if s == "" {
		return 0
	}
	if s == "max" {
		return math.MaxUint64
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		r.keep(fmt.Errorf("%s: %w", filepath.Join(r.dir, file), err))
		return 0
	}
	if v >= math.MaxInt64-4096 {
		return math.MaxUint64
	}
	return v
}

// flat reads a "key value" per line file (cpu.stat, memory.stat, ...).
func (r *statReader) flat(file string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(r.str(file), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

func (r *statReader) list(file string) []uint64 {
	var out []uint64
	for _, f := range strings.Fields(r.str(file)) {
		if n, err := strconv.ParseUint(f, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// pids reads pids.current and pids.max (no limit reads as 0), the same
// files on v1 and v2.
func (r *statReader) pids() PidsStats {
	p := PidsStats{Current: r.uint("pids.current"), Limit: r.uint("pids.max")}
	if p.Limit == math.MaxUint64 {
		p.Limit = 0
	}
	return p
}

// hugetlb reads the counters of each huge page size whose
// hugetlb.<size>.<present> file the group has (nil when none has it).
func (r *statReader) hugetlb(present string, read func(prefix string) HugetlbStats) map[string]HugetlbStats {
	var out map[string]HugetlbStats
	sizes, _ := hugepageSizes()
	for _, size := range sizes {
		p := "hugetlb." + size + "."
		if !exists(r.dir, p+present) {
			continue
		}
		if out == nil {
			out = map[string]HugetlbStats{}
		}
		out[size] = read(p)
	}
	return out
}

func dirExists(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	return nil
}

// userHZ is the unit of v1 cpuacct.stat: clock ticks, 100 a second on
// every Linux architecture berth builds for.
const userHZ = 100

func (m *Manager) statsV1(s *Stats) error {
	if dir, ok := m.v1("cpuacct"); ok {
		if err := dirExists(dir); err != nil {
			return err
		}
		r := &statReader{dir: dir}
		s.CPU.Usage.Total = r.uint("cpuacct.usage")
		s.CPU.Usage.Percpu = r.list("cpuacct.usage_percpu")
		if exists(dir, "cpuacct.usage_user") {
			s.CPU.Usage.User = r.uint("cpuacct.usage_user")
			s.CPU.Usage.Kernel = r.uint("cpuacct.usage_sys")
		} else {
			st := r.flat("cpuacct.stat")
			s.CPU.Usage.User = st["user"] * (1e9 / userHZ)
			s.CPU.Usage.Kernel = st["system"] * (1e9 / userHZ)
		}
		if r.err != nil {
			return r.err
		}
	}
	if dir, ok := m.v1("cpu"); ok {
		r := &statReader{dir: dir}
		st := r.flat("cpu.stat")
		s.CPU.Throttling = Throttling{st["nr_periods"], st["nr_throttled"], st["throttled_time"]}
		if r.err != nil {
			return r.err
		}
	}
	if dir, ok := m.v1("memory"); ok {
		if err := dirExists(dir); err != nil {
			return err
		}
		r := &statReader{dir: dir}
		entry := func(prefix string) MemoryEntry {
			if !exists(dir, prefix+"usage_in_bytes") {
				return MemoryEntry{}
			}
			return MemoryEntry{
				Limit: r.uint(prefix + "limit_in_bytes"), Usage: r.uint(prefix + "usage_in_bytes"),
				Max: r.uint(prefix + "max_usage_in_bytes"), Failcnt: r.uint(prefix + "failcnt"),
			}
		}
		s.Memory.Usage = entry("memory.")
		s.Memory.Swap = entry("memory.memsw.")
		s.Memory.Kernel = entry("memory.kmem.")
		s.Memory.KernelTCP = entry("memory.kmem.tcp.")
		s.Memory.Raw = r.flat("memory.stat")
		s.Memory.Cache, s.Memory.RSS = s.Memory.Raw["total_cache"], s.Memory.Raw["total_rss"]
		if r.err != nil {
			return r.err
		}
	}
	if dir, ok := m.v1("pids"); ok {
		r := &statReader{dir: dir}
		s.Pids = r.pids()
		if r.err != nil {
			return r.err
		}
	}
	if dir, ok := m.v1("blkio"); ok {
		r := &statReader{dir: dir}
		// CFQ's counters, else BFQ's, else the throttling layer's (which
		// sees the I/O of every device).
		for _, p := range []string{"blkio.", "blkio.bfq.", "blkio.throttle."} {
			bytes := parseBlkio(r.str(p + "io_service_bytes_recursive"))
			ops := parseBlkio(r.str(p + "io_serviced_recursive"))
			if len(bytes) > 0 || len(ops) > 0 {
				s.Blkio = BlkioStats{IoServiceBytesRecursive: bytes, IoServicedRecursive: ops}
				break
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	if dir, ok := m.v1("hugetlb"); ok {
		r := &statReader{dir: dir}
		s.Hugetlb = r.hugetlb("usage_in_bytes", func(p string) HugetlbStats {
			return HugetlbStats{Usage: r.uint(p + "usage_in_bytes"), Max: r.uint(p + "max_usage_in_bytes"), Failcnt: r.uint(p + "failcnt")}
		})
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// parseBlkio reads v1 "major:minor Op value" lines (the "Total" line is left out).
func parseBlkio(data string) []BlkioEntry {
	var out []BlkioEntry
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		ma, mi, ok := devNumbers(f[0])
		v, err := strconv.ParseUint(f[2], 10, 64)
		if ok && err == nil {
			out = append(out, BlkioEntry{Major: ma, Minor: mi, Op: f[1], Value: v})
		}
	}
	return out
}

// devNumbers parses "major:minor".
func devNumbers(s string) (major, minor uint64, ok bool) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	ma, err1 := strconv.ParseUint(maj, 10, 64)
	mi, err2 := strconv.ParseUint(min, 10, 64)
	return ma, mi, err1 == nil && err2 == nil
}

// ioStatKeys are the io.stat counters Stats reports: bytes or operations
// (ios) by operation.
var ioStatKeys = map[string]struct {
	op  string
	ios bool
}{
	"rbytes": {"Read", false}, "wbytes": {"Write", false}, "dbytes": {"Discard", false},
	"rios": {"Read", true}, "wios": {"Write", true}, "dios": {"Discard", true},
}

// parseIOStat reads v2 io.stat: "major:minor rbytes=N wbytes=N rios=N wios=N ...".
func parseIOStat(data string) (bytes, ops []BlkioEntry) {
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ma, mi, ok := devNumbers(f[0])
		if !ok {
			continue
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			key, known := ioStatKeys[k]
			if !ok || err != nil || !known {
				continue
			}
			e := BlkioEntry{Major: ma, Minor: mi, Op: key.op, Value: n}
			if key.ios {
				ops = append(ops, e)
			} else {
				bytes = append(bytes, e)
			}
		}
	}
	return bytes, ops
}

func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func statsV2(dir string, s *Stats) error {
	if err := dirExists(dir); err != nil {
		return err
	}
	r := &statReader{dir: dir}
	// cpu.stat's usage fields are there without the cpu controller.
	st := r.flat("cpu.stat")
	s.CPU.Usage = CPUUsage{Total: st["usage_usec"] * 1000, User: st["user_usec"] * 1000, Kernel: st["system_usec"] * 1000}
	s.CPU.Throttling = Throttling{st["nr_periods"], st["nr_throttled"], st["throttled_usec"] * 1000}
	if exists(dir, "memory.current") {
		s.Memory.Usage = MemoryEntry{
			Usage: r.uint("memory.current"), Max: r.uint("memory.peak"),
			Limit: r.uint("memory.max"), Failcnt: r.flat("memory.events")["max"],
		}
		if exists(dir, "memory.swap.current") {
			s.Memory.Swap = MemoryEntry{
				Usage:   s.Memory.Usage.Usage + r.uint("memory.swap.current"),
				Max:     addSat(s.Memory.Usage.Max, r.uint("memory.swap.peak")),
				Limit:   addSat(s.Memory.Usage.Limit, r.uint("memory.swap.max")),
				Failcnt: r.flat("memory.swap.events")["max"],
			}
		}
		s.Memory.Raw = r.flat("memory.stat")
		s.Memory.Cache, s.Memory.RSS = s.Memory.Raw["file"], s.Memory.Raw["anon"]
		s.Memory.KernelTCP.Usage = s.Memory.Raw["sock"]
		s.Memory.Kernel.Usage = s.Memory.Raw["kernel"]
	}
	if exists(dir, "pids.current") {
		s.Pids = r.pids()
	}
	if exists(dir, "io.stat") {
		s.Blkio.IoServiceBytesRecursive, s.Blkio.IoServicedRecursive = parseIOStat(r.str("io.stat"))
	}
	s.Hugetlb = r.hugetlb("current", func(p string) HugetlbStats {
		return HugetlbStats{Usage: r.uint(p + "current"), Failcnt: r.flat(p + "events")["max"]}
	})
	return r.err
}
