package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Set applies every resource of r to the container's cgroup (created
// before). Unset fields, and zero values where the runtime spec means
// "unset" (memory limit 0, cpu shares 0, quota 0...), leave the current
// value alone. Errors name the spec field and the cgroup file.
//
// Device rules are applied as the v1 kernel applies writes to
// devices.allow and devices.deny in order; on v2 the resulting rule set
// becomes an eBPF program attached to the group.
func (m *Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if m.Unified() {
		return m.setV2(r)
	}
	return m.setV1(r)
}

// kv is one write of Set.
type kv struct {
	field, file, value string
}

// writeFile writes value into dir/file; the error names the file, the
// value and the spec field.
func writeFile(field, dir, file, value string) error {
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(value), 0); err != nil {
		var hint string
		switch {
		case errors.Is(err, os.ErrNotExist):
			hint = " (the kernel has no such file)"
		case errors.Is(err, unix.EOPNOTSUPP) && strings.Contains(file, "bfq"):
			hint = " (is the device's I/O scheduler BFQ?)"
		}
		return fmt.Errorf("%s: write %q to %s: %w%s", field, value, p, unwrapPathErr(err), hint)
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// writeAll writes the files in order. A write the kernel refuses with
// EINVAL is tried again after the others: limits that constrain each
// other (CFS quota and burst, period and the parent's quota, realtime
// runtime and period) may need the other order to go from the old values
// to the new ones.
func writeAll(dir string, writes []kv) error {
	var later []kv
	for _, w := range writes {
		err := writeFile(w.field, dir, w.file, w.value)
		if err != nil && errors.Is(err, unix.EINVAL) {
			later = append(later, w)
			continue
		}
		if err != nil {
			return err
		}
	}
	for _, w := range later {
		if err := writeFile(w.field, dir, w.file, w.value); err != nil {
			return err
		}
	}
	return nil
}

func exists(dir, file string) bool {
	_, err := os.Stat(filepath.Join(dir, file))
	return err == nil
}

func readString(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	return strings.TrimSpace(string(b)), err
}

func readUint(dir, file string) (uint64, error) {
	s, err := readString(dir, file)
	if err != nil {
		return 0, err
	}
	if s == "max" {
		return ^uint64(0), nil
	}
	return strconv.ParseUint(s, 10, 64)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func i64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func u64(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// ---- both versions ----

// need returns the directory with the files of controller, which field
// requires: on v1 that controller's hierarchy, on v2 the group's directory
// once its parent has enabled the controller for it.
func (m *Manager) need(controller, field string) (string, error) {
	if m.Unified() {
		dir := m.paths[""]
		if err := needV2(dir, controller, field); err != nil {
			return "", err
		}
		return dir, nil
	}
	d, ok := m.v1(controller)
	if !ok {
		return "", fmt.Errorf("%s: the %s cgroup controller is not mounted on this host (cgroup v1: no %s hierarchy under %s)", field, controller, controller, Root)
	}
	return d, nil
}

func (m *Manager) setCpuset(r *specs.LinuxResources) error {
	if r.CPU == nil || (r.CPU.Cpus == "" && r.CPU.Mems == "") {
		return nil
	}
	dir, err := m.need("cpuset", "linux.resources.cpu.cpus/mems")
	if err != nil {
		return err
	}
	var w []kv
	if r.CPU.Cpus != "" {
		w = append(w, kv{"linux.resources.cpu.cpus", "cpuset.cpus", r.CPU.Cpus})
	}
	if r.CPU.Mems != "" {
		w = append(w, kv{"linux.resources.cpu.mems", "cpuset.mems", r.CPU.Mems})
	}
	return writeAll(dir, w)
}

func pidsMax(limit int64) string {
	if limit <= 0 {
		return "max"
	}
	return strconv.FormatInt(limit, 10)
}

func (m *Manager) setPids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	dir, err := m.need("pids", "linux.resources.pids")
	if err != nil {
		return err
	}
	return writeFile("linux.resources.pids.limit", dir, "pids.max", pidsMax(*r.Pids.Limit))
}

// setHugetlb writes each huge page limit to hugetlb.<size>.<suffix>, and
// to the reservation file beside it where the kernel has one (v1 files end
// in limit_in_bytes, v2 files in max).
func (m *Manager) setHugetlb(r *specs.LinuxResources) error {
	if len(r.HugepageLimits) == 0 {
		return nil
	}
	dir, err := m.need("hugetlb", "linux.resources.hugepageLimits")
	if err != nil {
		return err
	}
	suffix := "limit_in_bytes"
	if m.Unified() {
		suffix = "max"
	}
	sizes, err := hugepageSizes()
	if err != nil {
		return fmt.Errorf("linux.resources.hugepageLimits: list huge page sizes: %w", err)
	}
	for i, l := range r.HugepageLimits {
		name, err := hugepageFile(i, l, sizes)
		if err != nil {
			return err
		}
		field := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		v := strconv.FormatUint(l.Limit, 10)
		if err := writeFile(field, dir, "hugetlb."+name+"."+suffix, v); err != nil {
			return err
		}
		if f := "hugetlb." + name + ".rsvd." + suffix; exists(dir, f) {
			if err := writeFile(field, dir, f, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func rdmaLine(dev string, l specs.LinuxRdma) string {
	s := dev
	if l.HcaHandles != nil {
		s += " hca_handle=" + strconv.FormatUint(uint64(*l.HcaHandles), 10)
	}
	if l.HcaObjects != nil {
		s += " hca_object=" + strconv.FormatUint(uint64(*l.HcaObjects), 10)
	}
	return s
}

func (m *Manager) setRdma(r *specs.LinuxResources) error {
	if len(r.Rdma) == 0 {
		return nil
	}
	dir, err := m.need("rdma", "linux.resources.rdma")
	if err != nil {
		return err
	}
	for _, dev := range sortedKeys(r.Rdma) {
		if err := writeFile("linux.resources.rdma."+dev, dir, "rdma.max", rdmaLine(dev, r.Rdma[dev])); err != nil {
			return err
		}
	}
	return nil
}

// ---- cgroup v1 ----

func (m *Manager) setV1(r *specs.LinuxResources) error {
	if len(r.Unified) > 0 {
		return errors.New("linux.resources.unified: cgroup v2 settings cannot be applied on a cgroup v1 host")
	}
	for _, set := range []func(*specs.LinuxResources) error{
		m.setCpuset, m.setDevicesV1, m.setMemoryV1, m.setCPUV1, m.setPids,
		m.setBlkioV1, m.setHugetlb, m.setNetworkV1, m.setRdma,
	} {
		if err := set(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) setDevicesV1(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	rules, err := normalizeDevices(r.Devices)
	if err != nil {
		return err
	}
	dir, err := m.need("devices", "linux.resources.devices")
	if err != nil {
		return err
	}
	list, err := readString(dir, "devices.list")
	if err != nil {
		return fmt.Errorf("linux.resources.devices: %w", err)
	}
	cur, err := parseDevicesList(list)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: %s: %w", dir, err)
	}
	for _, w := range v1DeviceWrites(cur, emulateDevices(cur, rules)) {
		if err := writeFile("linux.resources.devices", dir, w.file, w.line); err != nil {
			return err
		}
	}
	return nil
}

func memoryRequested(mem *specs.LinuxMemory) bool {
	return mem != nil && (i64(mem.Limit) != 0 || i64(mem.Reservation) != 0 || i64(mem.Swap) != 0 ||
		mem.Kernel != nil || mem.KernelTCP != nil || mem.Swappiness != nil || mem.DisableOOMKiller != nil ||
		mem.UseHierarchy != nil)
}

func checkBytes(field string, v int64) error {
	if v < -1 {
		return fmt.Errorf("%s: invalid value %d (want bytes, or -1 for no limit)", field, v)
	}
	return nil
}

// checkUsage refuses a new limit below the current usage when the spec
// asks for it (checkBeforeUpdate).
func checkUsage(mem *specs.LinuxMemory, limit int64, dir, usageFile string) error {
	if mem.CheckBeforeUpdate == nil || !*mem.CheckBeforeUpdate || limit <= 0 {
		return nil
	}
	usage, err := readUint(dir, usageFile)
	if err != nil {
		return fmt.Errorf("linux.resources.memory.checkBeforeUpdate: %w", err)
	}
	if usage >= uint64(limit) {
		return fmt.Errorf("linux.resources.memory.limit: %d is not above the current usage %d (checkBeforeUpdate)", limit, usage)
	}
	return nil
}

func (m *Manager) setMemoryV1(r *specs.LinuxResources) error {
	mem := r.Memory
	if !memoryRequested(mem) {
		return nil
	}
	dir, err := m.need("memory", "linux.resources.memory")
	if err != nil {
		return err
	}
	limit, swap := i64(mem.Limit), i64(mem.Swap)
	if err := checkBytes("linux.resources.memory.limit", limit); err != nil {
		return err
	}
	if err := checkBytes("linux.resources.memory.swap", swap); err != nil {
		return err
	}
	if err := checkUsage(mem, limit, dir, "memory.usage_in_bytes"); err != nil {
		return err
	}
	memsw := exists(dir, "memory.memsw.limit_in_bytes")
	if limit == -1 && swap == 0 && memsw {
		// No memory limit means no memory+swap limit either (the
		// kernel keeps memsw >= memory).
		swap = -1
	}
	if swap != 0 && !memsw {
		return fmt.Errorf("linux.resources.memory.swap: this kernel does not account swap (no memory.memsw.limit_in_bytes in %s)", dir)
	}
	setLimit := func() error {
		if limit == 0 {
			return nil
		}
		err := writeFile("linux.resources.memory.limit", dir, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
		switch {
		case errors.Is(err, unix.EBUSY):
			usage, _ := readUint(dir, "memory.usage_in_bytes")
			peak, _ := readUint(dir, "memory.max_usage_in_bytes")
			return fmt.Errorf("linux.resources.memory.limit: cannot lower the limit to %d: the group uses %d (peak %d)", limit, usage, peak)
		case errors.Is(err, unix.EINVAL) && swap == 0 && memsw:
			cur, _ := readUint(dir, "memory.memsw.limit_in_bytes")
			return fmt.Errorf("linux.resources.memory.limit: %d is above the memory+swap limit %d; set linux.resources.memory.swap too: %w", limit, cur, err)
		}
		return err
	}
	setSwap := func() error {
		if swap == 0 {
			return nil
		}
		return writeFile("linux.resources.memory.swap", dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(swap, 10))
	}
	// memory.memsw.limit_in_bytes may never be below memory.limit_in_bytes:
	// raise memsw first when the limit grows, lower the limit first when it
	// shrinks.
	first, second := setLimit, setSwap
	if limit != 0 && swap != 0 {
		cur, err := readUint(dir, "memory.limit_in_bytes")
		if err != nil {
			return fmt.Errorf("linux.resources.memory: %w", err)
		}
		if limit == -1 || cur < uint64(limit) {
			first, second = setSwap, setLimit
		}
	}
	if err := first(); err != nil {
		return err
	}
	if err := second(); err != nil {
		return err
	}
	var w []kv
	if v := i64(mem.Reservation); v != 0 {
		if err := checkBytes("linux.resources.memory.reservation", v); err != nil {
			return err
		}
		w = append(w, kv{"linux.resources.memory.reservation", "memory.soft_limit_in_bytes", strconv.FormatInt(v, 10)})
	}
	if mem.Kernel != nil { //nolint:staticcheck // deprecated, still read to say it is ignored
		Warn("linux.resources.memory.kernel is ignored: kernel memory limits are obsolete since Linux 5.4")
	}
	if mem.KernelTCP != nil {
		w = append(w, kv{"linux.resources.memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*mem.KernelTCP, 10)})
	}
	if mem.Swappiness != nil {
		if *mem.Swappiness > 100 {
			return fmt.Errorf("linux.resources.memory.swappiness: invalid value %d (want 0 to 100)", *mem.Swappiness)
		}
		w = append(w, kv{"linux.resources.memory.swappiness", "memory.swappiness", strconv.FormatUint(*mem.Swappiness, 10)})
	}
	if mem.DisableOOMKiller != nil {
		v := "0"
		if *mem.DisableOOMKiller {
			v = "1"
		}
		w = append(w, kv{"linux.resources.memory.disableOOMKiller", "memory.oom_control", v})
	}
	if err := writeAll(dir, w); err != nil {
		return err
	}
	if mem.UseHierarchy != nil {
		v := "0"
		if *mem.UseHierarchy {
			v = "1"
		}
		if err := writeFile("linux.resources.memory.useHierarchy", dir, "memory.use_hierarchy", v); err != nil {
			// Recent kernels are always hierarchical and refuse the write.
			if cur, _ := readString(dir, "memory.use_hierarchy"); cur != v {
				return err
			}
		}
	}
	return nil
}

func cpuRequested(c *specs.LinuxCPU) bool {
	return c != nil && (u64(c.Shares) != 0 || i64(c.Quota) != 0 || u64(c.Period) != 0 || c.Burst != nil ||
		i64(c.RealtimeRuntime) != 0 || u64(c.RealtimePeriod) != 0 || c.Idle != nil)
}

func (m *Manager) setCPUV1(r *specs.LinuxResources) error {
	c := r.CPU
	if !cpuRequested(c) {
		return nil
	}
	dir, err := m.need("cpu", "linux.resources.cpu")
	if err != nil {
		return err
	}
	if v := u64(c.Shares); v != 0 {
		if err := writeFile("linux.resources.cpu.shares", dir, "cpu.shares", strconv.FormatUint(v, 10)); err != nil {
			return err
		}
		got, err := readUint(dir, "cpu.shares")
		if err != nil {
			return fmt.Errorf("linux.resources.cpu.shares: %w", err)
		}
		if got != v {
			return fmt.Errorf("linux.resources.cpu.shares: %d is out of range (the kernel took %d; the range is 2 to 262144)", v, got)
		}
	}
	var w []kv
	if v := u64(c.Period); v != 0 {
		w = append(w, kv{"linux.resources.cpu.period", "cpu.cfs_period_us", strconv.FormatUint(v, 10)})
	}
	if v := i64(c.Quota); v != 0 {
		if v < 0 {
			v = -1
		}
		w = append(w, kv{"linux.resources.cpu.quota", "cpu.cfs_quota_us", strconv.FormatInt(v, 10)})
	}
	if c.Burst != nil {
		w = append(w, kv{"linux.resources.cpu.burst", "cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10)})
	}
	if v := u64(c.RealtimePeriod); v != 0 {
		w = append(w, kv{"linux.resources.cpu.realtimePeriod", "cpu.rt_period_us", strconv.FormatUint(v, 10)})
	}
	if v := i64(c.RealtimeRuntime); v != 0 {
		w = append(w, kv{"linux.resources.cpu.realtimeRuntime", "cpu.rt_runtime_us", strconv.FormatInt(v, 10)})
	}
	if c.Idle != nil {
		w = append(w, kv{"linux.resources.cpu.idle", "cpu.idle", strconv.FormatInt(*c.Idle, 10)})
	}
	return writeAll(dir, w)
}

func blkioRequested(b *specs.LinuxBlockIO) bool {
	set := func(w *uint16) bool { return w != nil && *w != 0 } // 0 means unset, as for runc
	return b != nil && (set(b.Weight) || set(b.LeafWeight) || len(b.WeightDevice) > 0 ||
		len(b.ThrottleReadBpsDevice) > 0 || len(b.ThrottleWriteBpsDevice) > 0 ||
		len(b.ThrottleReadIOPSDevice) > 0 || len(b.ThrottleWriteIOPSDevice) > 0)
}

// firstFile returns the first of files that dir has ("" for none).
func firstFile(dir string, files ...string) string {
	for _, f := range files {
		if exists(dir, f) {
			return f
		}
	}
	return ""
}

type throttle struct {
	field, v1file, v2key string
	devs                 []specs.LinuxThrottleDevice
}

func throttles(b *specs.LinuxBlockIO) []throttle {
	return []throttle{
		{"linux.resources.blockIO.throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps", b.ThrottleReadBpsDevice},
		{"linux.resources.blockIO.throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps", b.ThrottleWriteBpsDevice},
		{"linux.resources.blockIO.throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops", b.ThrottleReadIOPSDevice},
		{"linux.resources.blockIO.throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops", b.ThrottleWriteIOPSDevice},
	}
}

func (m *Manager) setBlkioV1(r *specs.LinuxResources) error {
	b := r.BlockIO
	if !blkioRequested(b) {
		return nil
	}
	dir, err := m.need("blkio", "linux.resources.blockIO")
	if err != nil {
		return err
	}
	if b.Weight != nil && *b.Weight != 0 { // 0 means unset (dockerd sends it), as runc reads it
		// CFQ's blkio.weight is gone from kernels since 5.0; BFQ has
		// the same scale.
		f := firstFile(dir, "blkio.weight", "blkio.bfq.weight")
		if f == "" {
			return fmt.Errorf("linux.resources.blockIO.weight: %s has neither blkio.weight nor blkio.bfq.weight (no CFQ or BFQ I/O scheduler)", dir)
		}
		if err := writeFile("linux.resources.blockIO.weight", dir, f, strconv.FormatUint(uint64(*b.Weight), 10)); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if exists(dir, "blkio.leaf_weight") {
			if err := writeFile("linux.resources.blockIO.leafWeight", dir, "blkio.leaf_weight", strconv.FormatUint(uint64(*b.LeafWeight), 10)); err != nil {
				return err
			}
		} else {
			Warn("linux.resources.blockIO.leafWeight is ignored: the kernel has no CFQ scheduler (blkio.leaf_weight)")
		}
	}
	for i, d := range b.WeightDevice {
		field := fmt.Sprintf("linux.resources.blockIO.weightDevice[%d]", i)
		if d.Weight != nil {
			f := firstFile(dir, "blkio.weight_device", "blkio.bfq.weight_device")
			if f == "" {
				return fmt.Errorf("%s: %s has neither blkio.weight_device nor blkio.bfq.weight_device", field, dir)
			}
			if err := writeFile(field, dir, f, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight)); err != nil {
				return err
			}
		}
		if d.LeafWeight != nil {
			if !exists(dir, "blkio.leaf_weight_device") {
				Warn("%s.leafWeight is ignored: the kernel has no CFQ scheduler (blkio.leaf_weight_device)", field)
				continue
			}
			if err := writeFile(field, dir, "blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.LeafWeight)); err != nil {
				return err
			}
		}
	}
	for _, t := range throttles(b) {
		for i, d := range t.devs {
			if err := writeFile(fmt.Sprintf("%s[%d]", t.field, i), dir, t.v1file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

// hugepageSizes lists the huge page sizes the kernel offers, as the cgroup
// files name them ("2MB", "1GB").
func hugepageSizes() ([]string, error) {
	ents, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		s := strings.TrimSuffix(strings.TrimPrefix(e.Name(), "hugepages-"), "kB")
		if kb, err := strconv.ParseUint(s, 10, 64); err == nil {
			out = append(out, hugepageName(kb))
		}
	}
	return out, nil
}

// hugepageFile checks a limit's page size and returns its cgroup name.
func hugepageFile(i int, l specs.LinuxHugepageLimit, sizes []string) (string, error) {
	kb, err := HugepageKB(l.Pagesize)
	if err != nil {
		return "", fmt.Errorf("linux.resources.hugepageLimits[%d]: %w", i, err)
	}
	name := hugepageName(kb)
	for _, s := range sizes {
		if s == name {
			return name, nil
		}
	}
	return "", fmt.Errorf("linux.resources.hugepageLimits[%d]: page size %s is not supported by this kernel (it has %s)", i, l.Pagesize, strings.Join(sizes, ", "))
}

func (m *Manager) setNetworkV1(r *specs.LinuxResources) error {
	n := r.Network
	if n == nil {
		return nil
	}
	if n.ClassID != nil {
		dir, err := m.need("net_cls", "linux.resources.network.classID")
		if err != nil {
			return err
		}
		if err := writeFile("linux.resources.network.classID", dir, "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
			return err
		}
	}
	if len(n.Priorities) > 0 {
		dir, err := m.need("net_prio", "linux.resources.network.priorities")
		if err != nil {
			return err
		}
		for i, p := range n.Priorities {
			if err := writeFile(fmt.Sprintf("linux.resources.network.priorities[%d]", i), dir, "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- cgroup v2 ----

// needV2 checks that the v2 group dir has controller's files (the parent
// enabled the controller for it).
func needV2(dir, controller, field string) error {
	avail, err := readString(dir, "cgroup.controllers")
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	for _, c := range strings.Fields(avail) {
		if c == controller {
			return nil
		}
	}
	if avail == "" {
		avail = "none"
	}
	return fmt.Errorf("%s: the %s controller is not available to cgroup %s (cgroup v2; it has: %s)", field, controller, dir, avail)
}

func (m *Manager) setV2(r *specs.LinuxResources) error {
	for _, set := range []func(*specs.LinuxResources) error{
		m.setCpuset, m.setMemoryV2, m.setCPUV2, m.setPids, m.setIOV2, m.setHugetlb, m.setDevicesV2,
		setNetworkV2, m.setRdma, m.setUnified,
	} {
		if err := set(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) setMemoryV2(r *specs.LinuxResources) error {
	mem := r.Memory
	if !memoryRequested(mem) {
		return nil
	}
	if mem.Kernel != nil { //nolint:staticcheck // deprecated, still read to say it is ignored
		Warn("linux.resources.memory.kernel is ignored: cgroup v2 has no kernel memory limit")
	}
	if mem.KernelTCP != nil {
		Warn("linux.resources.memory.kernelTCP is ignored: cgroup v2 has no kernel TCP memory limit")
	}
	if mem.Swappiness != nil {
		Warn("linux.resources.memory.swappiness is ignored: cgroup v2 has no per-group swappiness")
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		Warn("linux.resources.memory.disableOOMKiller is ignored: cgroup v2 cannot disable the OOM killer")
	}
	limit, swap := i64(mem.Limit), i64(mem.Swap)
	if limit == 0 && swap == 0 && i64(mem.Reservation) == 0 {
		return nil
	}
	dir, err := m.need("memory", "linux.resources.memory")
	if err != nil {
		return err
	}
	if err := checkBytes("linux.resources.memory.limit", limit); err != nil {
		return err
	}
	if err := checkUsage(mem, limit, dir, "memory.current"); err != nil {
		return err
	}
	var w []kv
	swapMax, ok, err := SwapToV2(swap, limit)
	if err != nil {
		return fmt.Errorf("linux.resources.memory.swap: %w", err)
	}
	if ok {
		if !exists(dir, "memory.swap.max") {
			return fmt.Errorf("linux.resources.memory.swap: this kernel does not account swap (no memory.swap.max in %s)", dir)
		}
		w = append(w, kv{"linux.resources.memory.swap", "memory.swap.max", swapMax})
	} else if limit == -1 && exists(dir, "memory.swap.max") {
		// No memory limit: no swap limit either, as on v1.
		w = append(w, kv{"linux.resources.memory.swap", "memory.swap.max", "max"})
	}
	if limit != 0 {
		w = append(w, kv{"linux.resources.memory.limit", "memory.max", bytesV2(limit)})
	}
	if v := i64(mem.Reservation); v != 0 {
		if err := checkBytes("linux.resources.memory.reservation", v); err != nil {
			return err
		}
		w = append(w, kv{"linux.resources.memory.reservation", "memory.low", bytesV2(v)})
	}
	return writeAll(dir, w)
}

func (m *Manager) setCPUV2(r *specs.LinuxResources) error {
	c := r.CPU
	if !cpuRequested(c) {
		return nil
	}
	if i64(c.RealtimeRuntime) != 0 || u64(c.RealtimePeriod) != 0 {
		return errors.New("linux.resources.cpu.realtimeRuntime/realtimePeriod: realtime scheduling limits are not supported on cgroup v2")
	}
	var w []kv
	if v := SharesToWeight(u64(c.Shares)); v != 0 {
		w = append(w, kv{"linux.resources.cpu.shares", "cpu.weight", strconv.FormatUint(v, 10)})
	}
	if i64(c.Quota) != 0 || u64(c.Period) != 0 {
		w = append(w, kv{"linux.resources.cpu.quota/period", "cpu.max", CPUMax(i64(c.Quota), u64(c.Period))})
	}
	if c.Burst != nil {
		w = append(w, kv{"linux.resources.cpu.burst", "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)})
	}
	if c.Idle != nil {
		w = append(w, kv{"linux.resources.cpu.idle", "cpu.idle", strconv.FormatInt(*c.Idle, 10)})
	}
	if len(w) == 0 {
		return nil
	}
	dir, err := m.need("cpu", "linux.resources.cpu")
	if err != nil {
		return err
	}
	return writeAll(dir, w)
}

func (m *Manager) setIOV2(r *specs.LinuxResources) error {
	b := r.BlockIO
	if !blkioRequested(b) {
		return nil
	}
	dir, err := m.need("io", "linux.resources.blockIO")
	if err != nil {
		return err
	}
	// BFQ keeps blkio's 1..1000 scale in io.bfq.weight; io.weight
	// (io.cost) has 1..10000.
	bfq := exists(dir, "io.bfq.weight")
	if b.Weight != nil && *b.Weight != 0 { // 0 means unset (dockerd sends it), as runc reads it
		var err error
		if bfq {
			err = writeFile("linux.resources.blockIO.weight", dir, "io.bfq.weight", strconv.FormatUint(uint64(*b.Weight), 10))
		} else {
			err = writeFile("linux.resources.blockIO.weight", dir, "io.weight", strconv.FormatUint(BlkioWeightToIOWeight(uint64(*b.Weight)), 10))
		}
		if err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		Warn("linux.resources.blockIO.leafWeight is ignored: cgroup v2 has no leaf weight")
	}
	for i, d := range b.WeightDevice {
		field := fmt.Sprintf("linux.resources.blockIO.weightDevice[%d]", i)
		if d.LeafWeight != nil {
			Warn("%s.leafWeight is ignored: cgroup v2 has no leaf weight", field)
		}
		if d.Weight == nil {
			continue
		}
		var err error
		if bfq {
			err = writeFile(field, dir, "io.bfq.weight", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight))
		} else {
			err = writeFile(field, dir, "io.weight", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, BlkioWeightToIOWeight(uint64(*d.Weight))))
		}
		if err != nil {
			return err
		}
	}
	for _, t := range throttles(b) {
		for i, d := range t.devs {
			v := "max"
			if d.Rate != 0 {
				v = strconv.FormatUint(d.Rate, 10)
			}
			if err := writeFile(fmt.Sprintf("%s[%d]", t.field, i), dir, "io.max", fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, t.v2key, v)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Manager) setDevicesV2(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	dir := m.paths[""]
	rules, err := normalizeDevices(r.Devices)
	if err != nil {
		return err
	}
	// Without a program a v2 group may use every device.
	if err := setDeviceFilter(dir, emulateDevices(newDevState(true), rules)); err != nil {
		return fmt.Errorf("linux.resources.devices: %w", err)
	}
	return nil
}

func setNetworkV2(r *specs.LinuxResources) error {
	if n := r.Network; n != nil && (n.ClassID != nil || len(n.Priorities) > 0) {
		return errors.New("linux.resources.network: classID and priorities need the v1 net_cls and net_prio controllers, which cgroup v2 does not have")
	}
	return nil
}

// setUnified writes the unified key-values last, so that they override the
// values converted from the other fields.
func (m *Manager) setUnified(r *specs.LinuxResources) error {
	dir := m.paths[""]
	for _, k := range sortedKeys(r.Unified) {
		field := "linux.resources.unified[" + strconv.Quote(k) + "]"
		if k == "" || strings.ContainsAny(k, "/\x00") || strings.HasPrefix(k, ".") {
			return fmt.Errorf("%s: not a cgroup file name", field)
		}
		if !exists(dir, k) {
			controller, _, _ := strings.Cut(k, ".")
			if controller != "cgroup" {
				if _, err := m.need(controller, field); err != nil {
					return err
				}
			}
			return fmt.Errorf("%s: cgroup %s has no such file", field, dir)
		}
		if err := writeFile(field, dir, k, r.Unified[k]); err != nil {
			return err
		}
	}
	return nil
}
