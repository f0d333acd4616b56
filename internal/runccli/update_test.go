package runccli

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"-1": -1, "0": 0, "1024": 1024, "32m": 32 << 20, "32M": 32 << 20, "1g": 1 << 30, "1GB": 1 << 30,
		"2KiB": 2048, "512k": 512 << 10, "1.5g": 3 << 29, "100b": 100,
	} {
		got, err := parseBytes(in)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "m", "-2", "12x", "1e3", "99999999999p"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

func TestUpdateFlags(t *testing.T) {
	cmd := updateCmd()
	if err := cmd.ParseFlags([]string{"--memory", "64m", "--memory-swap", "-1", "--cpu-share", "512", "--cpu-quota", "-1",
		"--cpuset-cpus", "0", "--pids-limit", "30", "--blkio-weight", "300", "--cpu-rt-runtime", "100"}); err != nil {
		t.Fatal(err)
	}
	r := &specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: new(int64)}}
	if err := resourcesFromFlags(cmd.Flags(), r); err != nil {
		t.Fatal(err)
	}
	if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != -1 || r.Memory.Reservation == nil || *r.CPU.Shares != 512 ||
		*r.CPU.Quota != -1 || r.CPU.Cpus != "0" || *r.Pids.Limit != 30 || *r.BlockIO.Weight != 300 || *r.CPU.RealtimeRuntime != 100 {
		t.Errorf("resources from flags: %+v %+v %+v %+v", r.Memory, r.CPU, r.Pids, r.BlockIO)
	}
	if r.CPU.Period != nil || r.CPU.Mems != "" {
		t.Errorf("unset flags were set: %+v", r.CPU)
	}
	bad := updateCmd()
	bad.ParseFlags([]string{"--l3-cache-schema", "L3:0=f"})
	if err := resourcesFromFlags(bad.Flags(), &specs.LinuxResources{}); err == nil {
		t.Error("--l3-cache-schema accepted")
	}
}
