package runtime

import (
	"os"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMergeResources(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	base := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: i(32 << 20), Swap: i(64 << 20)},
		CPU:     &specs.LinuxCPU{Shares: u(512), Cpus: "0-1"},
		Unified: map[string]string{"memory.high": "1", "pids.max": "5"},
	}
	upd := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: i(128 << 20)},
		CPU:     &specs.LinuxCPU{Quota: i(50000)},
		Pids:    &specs.LinuxPids{Limit: i(20)},
		Unified: map[string]string{"pids.max": "7"},
	}
	got, err := mergeResources(base, upd)
	if err != nil {
		t.Fatal(err)
	}
	want := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: i(128 << 20), Swap: i(64 << 20)},
		CPU:     &specs.LinuxCPU{Shares: u(512), Quota: i(50000), Cpus: "0-1"},
		Pids:    &specs.LinuxPids{Limit: i(20)},
		Unified: map[string]string{"memory.high": "1", "pids.max": "7"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged %+v\nwant %+v", got, want)
	}
	if *base.Memory.Limit != 32<<20 {
		t.Error("merge changed its input")
	}
	if got, err := mergeResources(nil, upd); err != nil || *got.Pids.Limit != 20 {
		t.Errorf("merge into nothing: %+v %v", got, err)
	}
}

func TestCreateResourcesAddsDeviceRules(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("device rules are applied only as root")
	}
	if createResources(&specs.Spec{Linux: &specs.Linux{}}) != nil {
		t.Error("resources made up for a spec without any")
	}
	i := func(v int64) *int64 { return &v }
	s := &specs.Spec{Linux: &specs.Linux{
		Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, Pids: &specs.LinuxPids{Limit: i(9)}},
		Devices:   []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}, {Path: "/dev/p", Type: "p"}},
	}}
	r := createResources(s)
	if r.Pids == nil || *r.Pids.Limit != 9 {
		t.Errorf("pids lost: %+v", r.Pids)
	}
	if len(r.Devices) < 3 || r.Devices[0].Allow {
		t.Fatalf("devices %+v: want the spec's deny first", r.Devices)
	}
	fuse := r.Devices[1]
	if !fuse.Allow || fuse.Type != "c" || *fuse.Major != 10 || *fuse.Minor != 229 || fuse.Access != "rwm" {
		t.Errorf("linux.devices entry not allowed: %+v", fuse)
	}
	for _, d := range r.Devices[2:] {
		if d.Major != nil && *d.Major == 1 && *d.Minor == 3 {
			if len(s.Linux.Resources.Devices) != 1 {
				t.Error("the spec's own rules were changed")
			}
			return
		}
	}
	t.Errorf("devices %+v lack /dev/null", r.Devices)
}
