package cgroups

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSharesToWeight(t *testing.T) {
	for in, want := range map[uint64]uint64{
		0: 0, 1: 1, 2: 1, 1024: 39, 512: 20, 262144: 10000, 1 << 20: 10000,
	} {
		if got := SharesToWeight(in); got != want {
			t.Errorf("SharesToWeight(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestBlkioWeightToIOWeight(t *testing.T) {
	for in, want := range map[uint64]uint64{0: 0, 10: 1, 500: 4950, 1000: 10000, 5: 1, 2000: 10000} {
		if got := BlkioWeightToIOWeight(in); got != want {
			t.Errorf("BlkioWeightToIOWeight(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestSwapToV2(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		swap, limit int64
		want        string
		ok, err     bool
	}{
		{0, 64 * mib, "", false, false},
		{-1, 64 * mib, "max", true, false},
		{-1, 0, "max", true, false},
		{128 * mib, 64 * mib, "67108864", true, false},
		{64 * mib, 64 * mib, "0", true, false},
		{32 * mib, 64 * mib, "", false, true},
		{64 * mib, 0, "", false, true},
		{64 * mib, -1, "", false, true},
		{-5, 64 * mib, "", false, true},
	} {
		got, ok, err := SwapToV2(c.swap, c.limit)
		if got != c.want || ok != c.ok || (err != nil) != c.err {
			t.Errorf("SwapToV2(%d, %d) = %q %v %v; want %q %v err=%v", c.swap, c.limit, got, ok, err, c.want, c.ok, c.err)
		}
	}
}

func TestCPUMax(t *testing.T) {
	for _, c := range []struct {
		quota  int64
		period uint64
		want   string
	}{
		{50000, 100000, "50000 100000"}, {-1, 0, "max"}, {0, 100000, "max 100000"}, {20000, 0, "20000"}, {-1, 50000, "max 50000"},
	} {
		if got := CPUMax(c.quota, c.period); got != c.want {
			t.Errorf("CPUMax(%d, %d) = %q, want %q", c.quota, c.period, got, c.want)
		}
	}
}

func TestHugepageSizes(t *testing.T) {
	for in, kb := range map[string]uint64{"2MB": 2048, "1GB": 1 << 20, "64KB": 64, "32MB": 32768, "16GB": 16 << 20} {
		got, err := HugepageKB(in)
		if err != nil || got != kb {
			t.Errorf("HugepageKB(%q) = %d, %v; want %d", in, got, err, kb)
		}
		if name := hugepageName(kb); name != in {
			t.Errorf("hugepageName(%d) = %q, want %q", kb, name, in)
		}
	}
	for _, bad := range []string{"2M", "2mb", "0MB", "MB", "2 MB", ""} {
		if _, err := HugepageKB(bad); err == nil {
			t.Errorf("HugepageKB(%q) accepted", bad)
		}
	}
}

func TestNormalizeDevices(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	for _, bad := range []specs.LinuxDeviceCgroup{
		{Type: "x"}, {Type: "c", Access: "rwx"}, {Type: "c", Major: n(-2)}, {Type: "b", Minor: n(1 << 40)},
	} {
		if _, err := normalizeDevices([]specs.LinuxDeviceCgroup{bad}); err == nil || !strings.Contains(err.Error(), "linux.resources.devices[0]") {
			t.Errorf("rule %+v: err %v, want one naming linux.resources.devices[0]", bad, err)
		}
	}
	r, err := normalizeDevices([]specs.LinuxDeviceCgroup{{Allow: true}, {Type: "c", Major: n(1), Minor: n(-1), Access: "mr"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []devRule{{allow: true, typ: 'a', major: -1, minor: -1, acc: accAll}, {typ: 'c', major: 1, minor: -1, acc: accRead | accMknod}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("normalized %+v, want %+v", r, want)
	}
}

func TestV1DeviceWrites(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	rules := func(in ...specs.LinuxDeviceCgroup) []devRule {
		r, err := normalizeDevices(in)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A fresh group (allow-all) to deny-all plus two devices: reset first.
	cur := newDevState(true)
	want := emulateDevices(cur, rules(
		specs.LinuxDeviceCgroup{Allow: false},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "rw"}, // merges
		specs.LinuxDeviceCgroup{Allow: true, Type: "a", Major: n(7), Access: "r"},               // split into b and c
		specs.LinuxDeviceCgroup{Allow: false, Type: "c", Major: n(1), Minor: n(3), Access: "w"},
	))
	got := v1DeviceWrites(cur, want)
	exp := []v1Write{
		{"devices.deny", "a"},
		{"devices.allow", "c 1:3 rm"},
		{"devices.allow", "b 7:* r"},
		{"devices.allow", "c 7:* r"},
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("writes %q, want %q", got, exp)
	}
	// deny-all to deny-all: only the differences, no reset (a running
	// container keeps its devices while the rules change).
	cur, err := parseDevicesList("c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\n")
	if err != nil {
		t.Fatal(err)
	}
	want = emulateDevices(newDevState(true), rules(
		specs.LinuxDeviceCgroup{Allow: false},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "rwm"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(1), Minor: n(9), Access: "r"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(136), Access: "rw"},
	))
	got = v1DeviceWrites(cur, want)
	exp = []v1Write{
		{"devices.deny", "c 1:5 rwm"},
		{"devices.deny", "c 136:* m"},
		{"devices.allow", "c 1:9 r"},
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("writes %q, want %q", got, exp)
	}
	if a, err := parseDevicesList("a *:* rwm\n"); err != nil || !a.allowAll {
		t.Errorf("parse allow-all: %+v %v", a, err)
	}
	if _, err := parseDevicesList("c 1:x rwm"); err == nil {
		t.Error("bad devices.list line accepted")
	}
	// Back to allow-all: reset through devices.allow.
	got = v1DeviceWrites(cur, emulateDevices(cur, rules(specs.LinuxDeviceCgroup{Allow: true})))
	if !reflect.DeepEqual(got, []v1Write{{"devices.allow", "a"}}) {
		t.Errorf("writes %q, want a reset to allow-all", got)
	}
}

func TestParseStats(t *testing.T) {
	b := parseBlkio("254:0 Read 4096\n254:0 Write 1048576\n254:0 Sync 0\nTotal 1052672\n")
	if len(b) != 3 || b[1] != (BlkioEntry{254, 0, "Write", 1048576}) {
		t.Errorf("parseBlkio = %+v", b)
	}
	bytes, ops := parseIOStat("254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n7:0 rbytes=1 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
	if len(bytes) != 6 || len(ops) != 6 || bytes[1] != (BlkioEntry{254, 0, "Write", 8192}) || ops[3] != (BlkioEntry{7, 0, "Read", 1}) {
		t.Errorf("parseIOStat = %+v / %+v", bytes, ops)
	}
}

// The v2 OOM watch, on a stand-in memory.events: each rise of oom_kill is
// one event; the channel closes when the context ends.
func TestWatchMemoryEvents(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "memory.events")
	write := func(oom, kills int) {
		t.Helper()
		data := []byte("low 0\nhigh 0\nmax 3\noom " + strconv.Itoa(oom) + "\noom_kill " + strconv.Itoa(kills) + "\noom_group_kill 0\n")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := watchMemoryEvents(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			select {
			case _, ok := <-ch:
				if !ok {
					t.Fatal("channel closed early")
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("event %d of %d did not come", i+1, n)
			}
		}
		select {
		case <-ch:
			t.Fatal("one event too many")
		case <-time.After(100 * time.Millisecond):
		}
	}
	write(1, 1) // an OOM without a kill: nothing
	expect(0)
	write(2, 2)
	expect(1)
	write(3, 4)
	expect(2)
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("event after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
	if n, ok, err := eventCount(file, "oom_kill"); n != 4 || !ok || err != nil {
		t.Errorf("eventCount = %d %v %v", n, ok, err)
	}
	if _, ok, _ := eventCount(file, "oom_kill_disable"); ok {
		t.Error("eventCount found a missing key")
	}
}
