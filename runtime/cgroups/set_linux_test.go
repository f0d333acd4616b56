package cgroups

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func i64p(v int64) *int64    { return &v }
func u64p(v uint64) *uint64  { return &v }
func u16p(v uint16) *uint16  { return &v }
func u32p(v uint32) *uint32  { return &v }
func boolp(v bool) *bool     { return &v }
func major(dev uint64) int64 { return int64(unix.Major(dev)) }
func minor(dev uint64) int64 { return int64(unix.Minor(dev)) }

// diskOf returns the whole disk holding dir (the throttles take disks,
// not partitions), from the temporary directory, else the working one.
func diskOf(t *testing.T) (int64, int64) {
	t.Helper()
	for _, dir := range []string{os.TempDir(), "."} {
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil || unix.Major(st.Dev) == 0 {
			continue
		}
		sys := fmt.Sprintf("/sys/dev/block/%d:%d", major(st.Dev), minor(st.Dev))
		if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
			dev, err := os.ReadFile(filepath.Join(sys, "..", "dev"))
			if err != nil {
				continue
			}
			var ma, mi int64
			if _, err := fmt.Sscanf(strings.TrimSpace(string(dev)), "%d:%d", &ma, &mi); err != nil {
				continue
			}
			return ma, mi
		}
		if _, err := os.Stat(sys); err == nil {
			return major(st.Dev), minor(st.Dev)
		}
	}
	t.Fatal("neither the temporary nor the working directory is on a block device")
	return 0, 0
}

// hostTests run against the host's own layout (v1 or hybrid here, v2 on
// a pure v2 host) and again against a private cgroup2 mount (see
// TestUnifiedHierarchy), where the v2 controllers they need are there.
var hostTests = []struct {
	name  string
	needs []string // v2 controllers
	run   func(*testing.T, func(*testing.T) *Manager)
}{
	{"SetAndReadBack", []string{"memory", "cpu", "cpuset", "pids", "io"}, testSetAndReadBack},
	{"MemoryLimitOrder", []string{"memory"}, testMemoryLimitOrder},
	{"Realtime", []string{}, testRealtime},
	{"SetRefusals", []string{}, testSetRefusals},
	{"CheckBeforeUpdate", []string{"memory"}, testCheckBeforeUpdate},
	{"Devices", []string{}, testDevices},
	{"Stats", []string{"memory", "pids", "io"}, testStats},
	{"OOMKill", []string{"memory"}, testOOMKill},
	{"PidsLimit", []string{"pids"}, testPidsLimit},
	{"CPUQuota", []string{"cpu"}, testCPUQuota},
	{"DestroyNestedAndKilled", []string{}, testDestroyNestedAndKilled},
}

func TestSetAndReadBack(t *testing.T)         { testSetAndReadBack(t, newGroup) }
func TestMemoryLimitOrder(t *testing.T)       { testMemoryLimitOrder(t, newGroup) }
func TestRealtime(t *testing.T)               { testRealtime(t, newGroup) }
func TestSetRefusals(t *testing.T)            { testSetRefusals(t, newGroup) }
func TestCheckBeforeUpdate(t *testing.T)      { testCheckBeforeUpdate(t, newGroup) }
func TestDevices(t *testing.T)                { testDevices(t, newGroup) }
func TestStats(t *testing.T)                  { testStats(t, newGroup) }
func TestOOMKill(t *testing.T)                { testOOMKill(t, newGroup) }
func TestPidsLimit(t *testing.T)              { testPidsLimit(t, newGroup) }
func TestCPUQuota(t *testing.T)               { testCPUQuota(t, newGroup) }
func TestDestroyNestedAndKilled(t *testing.T) { testDestroyNestedAndKilled(t, newGroup) }

type want struct {
	controller, file, value string
	contains                bool
}

func check(t *testing.T, m *Manager, wants []want) {
	t.Helper()
	for _, w := range wants {
		got := read(t, file(t, m, w.controller, w.file))
		if (w.contains && !strings.Contains(got, w.value)) || (!w.contains && got != w.value) {
			t.Errorf("%s = %q, want %q", w.file, got, w.value)
		}
	}
}

// Every resource the host's controllers support, set and read back.
func testSetAndReadBack(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	ma, mi := diskOf(t)
	dev := specs.LinuxBlockIODevice{Major: ma, Minor: mi}
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64p(64 << 20), Reservation: i64p(32 << 20), Swap: i64p(128 << 20)},
		CPU: &specs.LinuxCPU{Shares: u64p(512), Quota: i64p(50000), Period: u64p(100000), Burst: u64p(10000),
			Cpus: "0", Mems: "0"},
		Pids: &specs.LinuxPids{Limit: i64p(100)},
		BlockIO: &specs.LinuxBlockIO{
			Weight:                  u16p(500),
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 1 << 20}},
			ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 2 << 20}},
			ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 100}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 200}},
		},
	}
	if !m.Unified() {
		r.Memory.Swappiness = u64p(10)
		r.Memory.DisableOOMKiller = boolp(true)
		r.Memory.KernelTCP = i64p(16 << 20)
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	d := fmt.Sprintf("%d:%d", ma, mi)
	if m.Unified() {
		check(t, m, []want{
			{"memory", "memory.max", "67108864", false},
			{"memory", "memory.low", "33554432", false},
			{"memory", "memory.swap.max", "67108864", false}, // 128 MiB memory+swap - 64 MiB memory
			{"cpu", "cpu.weight", "20", false},               // shares 512
			{"cpu", "cpu.max", "50000 100000", false},
			{"cpu", "cpu.max.burst", "10000", false},
			{"cpuset", "cpuset.cpus", "0", false},
			{"cpuset", "cpuset.mems", "0", false},
			{"pids", "pids.max", "100", false},
			{"io", "io.max", d + " rbps=1048576 wbps=2097152 riops=100 wiops=200", true},
		})
		if exists(m.paths[""], "io.bfq.weight") {
			check(t, m, []want{{"io", "io.bfq.weight", "default 500", false}})
		} else {
			check(t, m, []want{{"io", "io.weight", "default 4950", false}})
		}
	} else {
		check(t, m, []want{
			{"memory", "memory.limit_in_bytes", "67108864", false},
			{"memory", "memory.soft_limit_in_bytes", "33554432", false},
			{"memory", "memory.memsw.limit_in_bytes", "134217728", false},
			{"memory", "memory.swappiness", "10", false},
			{"memory", "memory.oom_control", "oom_kill_disable 1", true},
			{"memory", "memory.kmem.tcp.limit_in_bytes", "16777216", false},
			{"cpu", "cpu.shares", "512", false},
			{"cpu", "cpu.cfs_quota_us", "50000", false},
			{"cpu", "cpu.cfs_period_us", "100000", false},
			{"cpu", "cpu.cfs_burst_us", "10000", false},
			{"cpuset", "cpuset.cpus", "0", false},
			{"cpuset", "cpuset.mems", "0", false},
			{"pids", "pids.max", "100", false},
			{"blkio", "blkio.throttle.read_bps_device", d + " 1048576", false},
			{"blkio", "blkio.throttle.write_bps_device", d + " 2097152", false},
			{"blkio", "blkio.throttle.read_iops_device", d + " 100", false},
			{"blkio", "blkio.throttle.write_iops_device", d + " 200", false},
		})
		dir, _ := m.v1("blkio")
		check(t, m, []want{{"blkio", firstFile(dir, "blkio.weight", "blkio.bfq.weight"), "500", false}})
	}

	// An update that only names the quota keeps the period; idle on its own.
	if err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64p(-1), Idle: i64p(1)}}); err != nil {
		t.Fatal(err)
	}
	if m.Unified() {
		check(t, m, []want{{"cpu", "cpu.max", "max 100000", false}, {"cpu", "cpu.idle", "1", false}})
	} else {
		check(t, m, []want{{"cpu", "cpu.cfs_quota_us", "-1", false}, {"cpu", "cpu.cfs_period_us", "100000", false}, {"cpu", "cpu.idle", "1", false}})
	}

	// A per-device weight works where the device's scheduler takes one, and
	// otherwise says which field failed.
	err := m.Set(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev, Weight: u16p(300)}}}})
	if err != nil && !strings.Contains(err.Error(), "linux.resources.blockIO.weightDevice[0]") {
		t.Errorf("weightDevice error %q does not name the field", err)
	}
	if err == nil {
		dir := m.paths[""]
		if !m.Unified() {
			dir, _ = m.v1("blkio")
		}
		f := firstFile(dir, "blkio.weight_device", "blkio.bfq.weight_device", "io.bfq.weight", "io.weight")
		check(t, m, []want{{"blkio", f, d + " ", true}})
	}
}

// Memory and memory+swap go up and down together: the kernel keeps
// memsw >= memory at every step, so the order of the writes matters.
func testMemoryLimitOrder(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	limitFile, swapFile := "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	if m.Unified() {
		limitFile, swapFile = "memory.max", "memory.swap.max"
	}
	for _, step := range []struct {
		limit, swap          int64
		wantLimit, wantSwap  string
		wantSwapV2, wantMaxV string
	}{
		{64 << 20, 128 << 20, "67108864", "134217728", "67108864", "67108864"},
		{256 << 20, 512 << 20, "268435456", "536870912", "268435456", "268435456"},
		{32 << 20, 48 << 20, "33554432", "50331648", "16777216", "33554432"},
		{-1, 0, "9223372036854771712", "9223372036854771712", "max", "max"},
	} {
		r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(step.limit)}}
		if step.swap != 0 {
			r.Memory.Swap = i64p(step.swap)
		}
		if err := m.Set(r); err != nil {
			t.Fatalf("limit %d swap %d: %v", step.limit, step.swap, err)
		}
		if m.Unified() {
			check(t, m, []want{{"memory", limitFile, step.wantMaxV, false}, {"memory", swapFile, step.wantSwapV2, false}})
		} else {
			check(t, m, []want{{"memory", limitFile, step.wantLimit, false}, {"memory", swapFile, step.wantSwap, false}})
		}
	}
	// Swap below the memory limit is refused with the field named.
	err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(64 << 20), Swap: i64p(32 << 20)}})
	if err == nil || !strings.Contains(err.Error(), "memory") {
		t.Errorf("swap below limit: err %v", err)
	}
}

func testRealtime(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	r := &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: u64p(100000), RealtimeRuntime: i64p(10000)}}
	err := m.Set(r)
	if m.Unified() {
		if err == nil || !strings.Contains(err.Error(), "realtime") {
			t.Fatalf("realtime on v2: err %v, want a refusal naming it", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, []want{{"cpu", "cpu.rt_period_us", "100000", false}, {"cpu", "cpu.rt_runtime_us", "10000", false}})
	// A shorter period than the current runtime needs the runtime first.
	if err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: u64p(5000), RealtimeRuntime: i64p(2000)}}); err != nil {
		t.Fatal(err)
	}
	check(t, m, []want{{"cpu", "cpu.rt_period_us", "5000", false}, {"cpu", "cpu.rt_runtime_us", "2000", false}})
}

// Requests the host cannot satisfy fail with the field and the controller named.
func testSetRefusals(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	expectErr := func(what string, r *specs.LinuxResources, words ...string) {
		t.Helper()
		err := m.Set(r)
		if err == nil {
			t.Errorf("%s: accepted", what)
			return
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", what, err, w)
			}
		}
	}
	expectErr("bad device type", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "z"}}}, "linux.resources.devices[0]")
	expectErr("bad page size", &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2M", Limit: 1}}}, "hugepageLimits")
	if m.Unified() {
		expectErr("network on v2", &specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32p(0x100001)}}, "net_cls")
		return
	}
	expectErr("unified on v1", &specs.LinuxResources{Unified: map[string]string{"memory.high": "1000000"}}, "unified", "v1")
	expectErr("swappiness", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64p(101)}}, "swappiness")
	expectErr("shares", &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(1)}}, "linux.resources.cpu.shares", "range")
	// Controllers this host may lack: a clear refusal where it does, the
	// value where it does not.
	hl := &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}}
	if dir, ok := m.v1("hugetlb"); ok {
		if err := m.Set(hl); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(dir, "hugetlb.2MB.limit_in_bytes")); got != "4194304" {
			t.Errorf("hugetlb.2MB.limit_in_bytes = %s", got)
		}
	} else {
		expectErr("hugetlb without a hierarchy", hl, "linux.resources.hugepageLimits", "hugetlb", "not mounted")
	}
	net := &specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: u32p(0x100001)}}
	if dir, ok := m.v1("net_cls"); ok {
		if err := m.Set(net); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(dir, "net_cls.classid")); got != strconv.Itoa(0x100001) {
			t.Errorf("net_cls.classid = %s", got)
		}
	} else {
		expectErr("net_cls without a hierarchy", net, "linux.resources.network.classID", "net_cls", "not mounted")
	}
	if _, ok := m.v1("net_prio"); !ok {
		expectErr("net_prio without a hierarchy", &specs.LinuxResources{Network: &specs.LinuxNetwork{
			Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 1}}}}, "net_prio")
	}
}

// checkBeforeUpdate refuses a limit below what the group already uses.
func testCheckBeforeUpdate(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	p := startIn(t, m, `x=$(head -c 4000000 /dev/zero | tr '\0' a); echo ready; sleep 30; echo done`)
	waitOutput(t, p, "ready")
	err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(1 << 20), CheckBeforeUpdate: boolp(true)}})
	if err == nil || !strings.Contains(err.Error(), "checkBeforeUpdate") {
		t.Fatalf("limit below usage: err %v", err)
	}
}

func waitOutput(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.output(), s) {
		select {
		case <-p.done:
			if strings.Contains(p.output(), s) {
				return
			}
			t.Fatalf("process ended without printing %q: %s (%v)", s, p.output(), p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output: %s", s, p.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const deviceScript = `
(echo x > /dev/null) 2>/dev/null && echo null-write-ok || echo null-write-denied
(head -c1 /dev/zero > /dev/null) 2>/dev/null && echo zero-read-ok || echo zero-read-denied
(echo x > /dev/zero) 2>/dev/null && echo zero-write-ok || echo zero-write-denied
(head -c1 /dev/urandom > /dev/null) 2>/dev/null && echo urandom-read-ok || echo urandom-read-denied
`

// checkDevices runs deviceScript in m and compares what it could open.
func checkDevices(t *testing.T, m *Manager, want string) {
	t.Helper()
	// Its stderr is a pipe, so the script's own 2>/dev/null is the only
	// device it opens besides the ones it tests.
	got := strings.Join(strings.Fields(startIn(t, m, deviceScript).wait(t, 10*time.Second)), " ")
	if got != want {
		t.Errorf("device access: %s, want %s", got, want)
	}
}

// Device rules are enforced: v1 devices.allow/deny, v2 an eBPF program.
func testDevices(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	n := func(v int64) *int64 { return &v }
	rules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "rwm"},
		{Allow: true, Type: "c", Major: n(1), Minor: n(5), Access: "r"},
	}
	if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	if !m.Unified() {
		check(t, m, []want{{"devices", "devices.list", "c 1:3 rwm\nc 1:5 r", false}})
	}
	checkDevices(t, m, "null-write-ok zero-read-ok zero-write-denied urandom-read-denied")

	// New rules replace the old ones.
	rules[2] = specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(1), Minor: n(9), Access: "r"}
	if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	checkDevices(t, m, "null-write-ok zero-read-denied zero-write-denied urandom-read-ok")
	if m.Unified() {
		if n, err := devicePrograms(m.paths[""]); err != nil || n != 1 {
			t.Errorf("device programs attached: %d (%v), want 1", n, err)
		}
	} else {
		check(t, m, []want{{"devices", "devices.list", "c 1:3 rwm\nc 1:9 r", false}})
	}
	// And allow-all lifts them.
	if err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}); err != nil {
		t.Fatal(err)
	}
	checkDevices(t, m, "null-write-ok zero-read-ok zero-write-ok urandom-read-ok")
}

// Stats of processes running in the group: CPU time, memory, pids, block I/O.
func testStats(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	if err := m.Set(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64p(64 << 20)},
		Pids:   &specs.LinuxPids{Limit: i64p(50)},
	}); err != nil {
		t.Fatal(err)
	}
	// Direct writes to a file on a disk show as block I/O of the group.
	dir := t.TempDir()
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Major(st.Dev) == 0 {
		var err error
		if dir, err = os.MkdirTemp(".", "berth-io-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	out := filepath.Join(dir, "berth-io")
	p := startIn(t, m, `dd if=/dev/zero of=`+out+` bs=65536 count=32 oflag=direct 2>/dev/null
x=$(head -c 3000000 /dev/zero | tr '\0' a)
i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done
echo ready; sleep 30; echo done`)
	waitOutput(t, p, "ready")
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.Usage.Total == 0 || s.CPU.Usage.User == 0 || s.CPU.Usage.User > s.CPU.Usage.Total+20_000_000 {
		t.Errorf("cpu usage %+v: want a total and a user time", s.CPU.Usage)
	}
	if s.Memory.Usage.Usage < 1<<20 || s.Memory.Usage.Limit != 64<<20 || s.Memory.Usage.Max < s.Memory.Usage.Usage {
		t.Errorf("memory usage %+v: want >= 1 MiB used, limit 64 MiB, a peak", s.Memory.Usage)
	}
	if len(s.Memory.Raw) == 0 {
		t.Error("no memory.stat fields")
	}
	if s.Pids.Current != 2 || s.Pids.Limit != 50 {
		t.Errorf("pids %+v, want 2 (sh and sleep) of 50", s.Pids)
	}
	var written uint64
	for _, e := range s.Blkio.IoServiceBytesRecursive {
		if e.Op == "Write" {
			written += e.Value
		}
	}
	if written < 2<<20 {
		t.Errorf("block I/O %+v: want >= 2 MiB written", s.Blkio)
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	json.Unmarshal(data, &generic)
	for _, k := range []string{"cpu", "memory", "pids", "blkio"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("stats JSON lacks %q: %s", k, data)
		}
	}
}

// A memory hog in a 32 MiB group is OOM-killed, counted and notified; a
// `true` in another such group is not.
func testOOMKill(t *testing.T, mk func(*testing.T) *Manager) {
	limit := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(32 << 20), Swap: i64p(32 << 20)}}
	quiet := mk(t)
	if err := quiet.Set(limit); err != nil {
		t.Fatal(err)
	}
	startIn(t, quiet, "true").wait(t, 10*time.Second)
	if n, err := quiet.OOMKillCount(); err != nil || n != 0 {
		t.Errorf("true: OOM kills %d (%v), want 0", n, err)
	}

	m := mk(t)
	if err := m.Set(limit); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := m.NotifyOOM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := startIn(t, m, `x=$(head -c 100000000 /dev/zero | tr '\0' a); echo survived`)
	out := p.wait(t, 30*time.Second)
	if strings.Contains(out, "survived") {
		t.Fatalf("the hog survived a 32 MiB limit")
	}
	if sig := p.signaled(); sig != syscall.SIGKILL {
		t.Errorf("hog ended with %v (output %q), want SIGKILL", p.err, out)
	}
	n, err := m.OOMKillCount()
	if err != nil || n < 1 {
		t.Errorf("OOM kills %d (%v), want >= 1", n, err)
	}
	select {
	case <-events:
	case <-time.After(5 * time.Second):
		t.Error("no OOM notification")
	}
	cancel()
	for range events { // closed once ctx ends
	}
}

// A fork bomb stops at the pids limit.
func testPidsLimit(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(20)}}); err != nil {
		t.Fatal(err)
	}
	p := startIn(t, m, `i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done; echo all-forked`)
	out := p.wait(t, 20*time.Second)
	if strings.Contains(out, "all-forked") || !strings.Contains(out, "fork") {
		t.Errorf("output %q: want the shell to fail to fork", out)
	}
	pids, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) > 20 || len(pids) < 18 {
		t.Errorf("%d processes in the group, want 18 to 20 (the limit is 20)", len(pids))
	}
	events := read(t, file(t, m, "pids", "pids.events"))
	if !strings.HasPrefix(events, "max ") || strings.HasPrefix(events, "max 0") {
		t.Errorf("pids.events %q: want failed forks counted", events)
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pids.Limit != 20 || s.Pids.Current != uint64(len(pids)) {
		t.Errorf("pids stats %+v, want %d of 20", s.Pids, len(pids))
	}
}

// A CPU quota of half a CPU holds a busy loop near 50%, as the group's own
// CPU accounting measures it.
func testCPUQuota(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	// The highest weight, so that other load on the host cannot keep the
	// loop below its quota: the quota is what must hold it.
	if err := m.Set(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(262144), Quota: i64p(50000), Period: u64p(100000)}}); err != nil {
		t.Fatal(err)
	}
	startIn(t, m, `while :; do :; done`)
	time.Sleep(300 * time.Millisecond)
	s0, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	time.Sleep(1500 * time.Millisecond)
	s1, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	share := float64(s1.CPU.Usage.Total-s0.CPU.Usage.Total) / float64(time.Since(t0).Nanoseconds())
	t.Logf("busy loop used %.1f%% of a CPU under a 50%% quota", 100*share)
	if share < 0.35 || share > 0.65 {
		t.Errorf("busy loop used %.1f%% of a CPU, want 35-65%%", 100*share)
	}
	if s1.CPU.Throttling.ThrottledPeriods <= s0.CPU.Throttling.ThrottledPeriods {
		t.Errorf("throttling %+v -> %+v: want throttled periods", s0.CPU.Throttling, s1.CPU.Throttling)
	}
}

// Destroy removes groups the container made inside its own, and groups
// whose processes were just killed with SIGKILL.
func testDestroyNestedAndKilled(t *testing.T, mk func(*testing.T) *Manager) {
	m := mk(t)
	p := startIn(t, m, `sleep 60 & sleep 60 & sleep 60 & echo started; wait`)
	waitOutput(t, p, "started")
	pids, err := m.Pids()
	if err != nil || len(pids) != 4 {
		t.Fatalf("pids %v (%v), want 4", pids, err)
	}
	// Move one sleeper into a nested group, as a container managing its
	// own cgroups would.
	for name, dir := range m.Paths() {
		nested := filepath.Join(dir, "inner", "deeper")
		if err := os.MkdirAll(nested, 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(name, "cpuset") {
			if err := fillCpuset(nested); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(nested, "cgroup.procs"), []byte(strconv.Itoa(pids[len(pids)-1])), 0); err != nil {
			t.Fatalf("move into %s: %v", nested, err)
		}
	}
	if all, _ := m.Pids(); len(all) != 4 {
		t.Errorf("Pids lists %v, want the 4 processes including the nested one", all)
	}
	// kill -9 of everything, and Destroy right away.
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	if err := m.Destroy(); err != nil {
		t.Fatalf("destroy right after SIGKILL: %v", err)
	}
	if m.Exists() {
		t.Fatalf("groups left: %v", m.Paths())
	}
	// A second Destroy of a removed group is fine.
	if err := m.Destroy(); err != nil {
		t.Errorf("second destroy: %v", err)
	}
}

func TestNewUnifiedNeedsCgroup2(t *testing.T) {
	if _, err := NewUnified(t.TempDir(), "/berth-x"); err == nil || !strings.Contains(err.Error(), "cgroup2") {
		t.Errorf("NewUnified on a plain directory: %v", err)
	}
	if _, err := NewUnified("/", "/a/../b"); err == nil {
		t.Error("a path with .. was accepted")
	}
}

func TestOOMWithoutMemoryController(t *testing.T) {
	m := Load(map[string]string{"pids": "/nonexistent/berth"})
	if _, err := m.OOMKillCount(); !errors.Is(err, ErrNoMemoryController) {
		t.Errorf("OOMKillCount without memory: %v", err)
	}
}

// TestBlkioWeightZeroIsUnset: dockerd sends blockIO.weight 0 for "not
// set"; it must not be written (the kernel refuses 0).
func TestBlkioWeightZeroIsUnset(t *testing.T) {
	m := newGroup(t)
	zero := uint16(0)
	if err := m.Set(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: &zero, LeafWeight: &zero}}); err != nil {
		t.Fatalf("weight 0 (unset) refused: %v", err)
	}
}
