package profile

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/runtime/seccomp"
)

// testdata/default.json is the default spec without its seccomp profile
// (checked separately below): `runc spec`'s shape with Docker's
// confinement, hostname "berth" and ociVersion 1.3.0.
func TestDefaultMatchesGolden(t *testing.T) {
	golden, err := os.ReadFile("testdata/default.json")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if d.Linux.Seccomp == nil || !reflect.DeepEqual(d.Linux.Seccomp, seccomp.DefaultProfileFor(defaultCaps)) {
		t.Fatalf("Default() does not carry Docker's seccomp profile for its capabilities")
	}
	d.Linux.Seccomp = nil
	got, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var want, have any
	if err := json.Unmarshal(golden, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &have); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, have) {
		t.Fatalf("Default() differs from testdata/default.json:\n%s", got)
	}
}

func TestDefaultRoundTrip(t *testing.T) {
	b, err := json.MarshalIndent(Default(), "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("the default spec does not read back: %v", err)
	}
	if !reflect.DeepEqual(&s, Default()) {
		t.Fatalf("round trip changed the spec:\n%s", b)
	}

	if s.Version != specs.Version {
		t.Errorf("ociVersion %q, want %q", s.Version, specs.Version)
	}
	if s.Root == nil || s.Root.Path != "rootfs" || !s.Root.Readonly {
		t.Errorf("root %+v, want rootfs read-only", s.Root)
	}
	if s.Hostname != "berth" {
		t.Errorf("hostname %q, want berth", s.Hostname)
	}
	p := s.Process
	if !p.Terminal || p.User.UID != 0 || p.User.GID != 0 || !slices.Equal(p.Args, []string{"sh"}) || p.Cwd != "/" || !p.NoNewPrivileges {
		t.Errorf("process %+v, want a root sh on a terminal in / with noNewPrivileges", p)
	}
	if !slices.Contains(p.Env, "TERM=xterm") || !slices.Contains(p.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") {
		t.Errorf("env %q lacks PATH or TERM", p.Env)
	}
	// Docker's 14 default capabilities, none inheritable (CVE-2022-29162).
	caps := seccomp.DockerDefaultCapabilities
	c := p.Capabilities
	if len(c.Bounding) != 14 || !sameSet(c.Bounding, caps) || !sameSet(c.Effective, caps) || !sameSet(c.Permitted, caps) || c.Ambient != nil || c.Inheritable != nil {
		t.Errorf("capabilities %+v, want Docker's 14 %v in bounding, effective and permitted only", c, caps)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("no default seccomp profile denying by default: %+v", s.Linux.Seccomp)
	}
	if len(p.Rlimits) != 1 || p.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}) {
		t.Errorf("rlimits %+v, want RLIMIT_NOFILE 1024/1024", p.Rlimits)
	}

	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	wantDests := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
	if !slices.Equal(dests, wantDests) {
		t.Errorf("mounts %q, want %q in this order", dests, wantDests)
	}
	if m := mount(t, &s, "/dev/pts"); m.Type != "devpts" || !slices.Equal(m.Options, []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}) {
		t.Errorf("/dev/pts mount %+v", m)
	}
	if m := mount(t, &s, "/sys"); m.Type != "sysfs" || !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys mount %+v, want read-only sysfs", m)
	}

	if got, want := nsTypes(&s), []specs.LinuxNamespaceType{"pid", "network", "ipc", "uts", "mount", "cgroup"}; !slices.Equal(got, want) {
		t.Errorf("namespaces %q, want %q", got, want)
	}
	if s.Linux.UIDMappings != nil || s.Linux.GIDMappings != nil {
		t.Error("the default spec has id mappings")
	}
	devs := s.Linux.Resources.Devices
	if len(devs) < 2 || devs[0].Allow || devs[0].Access != "rwm" || devs[0].Type != "" {
		t.Errorf("device rules %+v, want deny all rwm first", devs)
	}
	allowed := map[[2]int64]bool{}
	for _, d := range devs[1:] {
		if !d.Allow {
			t.Errorf("a deny rule after the first: %+v", d)
		}
		if d.Major != nil && d.Minor != nil && d.Type == "c" && d.Access == "rwm" {
			allowed[[2]int64{*d.Major, *d.Minor}] = true
		}
	}
	for _, d := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 2}} {
		if !allowed[d] {
			t.Errorf("device c %d:%d not allowed", d[0], d[1])
		}
	}
	// Docker's masked paths.
	for _, p := range []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("maskedPaths lack %s", p)
		}
	}
	if !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sysrq-trigger") {
		t.Errorf("readonlyPaths %q lack /proc/sys or /proc/sysrq-trigger", s.Linux.ReadonlyPaths)
	}
}

func TestDefaultReturnsIndependentSpecs(t *testing.T) {
	a := Default()
	a.Process.Capabilities.Bounding[0] = "CAP_SYS_ADMIN"
	a.Mounts[2].Options[0] = "changed"
	a.Linux.Namespaces[0].Type = "user"
	b := Default()
	if b.Process.Capabilities.Bounding[0] != "CAP_CHOWN" || b.Process.Capabilities.Effective[0] != "CAP_CHOWN" ||
		b.Mounts[2].Options[0] != "nosuid" || b.Linux.Namespaces[0].Type != "pid" {
		t.Fatal("changing one default spec changed another")
	}
}

func TestRootless(t *testing.T) {
	s := Default()
	Rootless(s, 1000, 1001)

	if got, want := nsTypes(s), []specs.LinuxNamespaceType{"pid", "ipc", "uts", "mount", "cgroup", "user"}; !slices.Equal(got, want) {
		t.Errorf("namespaces %q, want %q (network dropped, user added)", got, want)
	}
	wantUID := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
	wantGID := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1001, Size: 1}}
	if !reflect.DeepEqual(s.Linux.UIDMappings, wantUID) || !reflect.DeepEqual(s.Linux.GIDMappings, wantGID) {
		t.Errorf("mappings uid %+v gid %+v, want 0 -> 1000/1001 size 1", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	sys := mount(t, s, "/sys")
	if sys.Type != "none" || sys.Source != "/sys" || !slices.Equal(sys.Options, []string{"rbind", "nosuid", "noexec", "nodev", "ro"}) {
		t.Errorf("/sys mount %+v, want a read-only rbind of /sys", sys)
	}
	if pts := mount(t, s, "/dev/pts"); slices.Contains(pts.Options, "gid=5") || !slices.Contains(pts.Options, "newinstance") {
		t.Errorf("/dev/pts options %q, want gid=5 dropped and the rest kept", pts.Options)
	}
	mount(t, s, "/sys/fs/cgroup") // kept, as runc does
	if len(s.Mounts) != len(Default().Mounts) {
		t.Errorf("%d mounts, want %d", len(s.Mounts), len(Default().Mounts))
	}
	if s.Linux.Resources != nil {
		t.Errorf("resources %+v, want none", s.Linux.Resources)
	}

	// Applying it twice changes nothing more.
	before, _ := json.Marshal(s)
	Rootless(s, 1000, 1001)
	after, _ := json.Marshal(s)
	if string(before) != string(after) {
		t.Errorf("Rootless is not idempotent:\n%s\n%s", before, after)
	}

	// A spec without a linux section gets one.
	bare := &specs.Spec{}
	Rootless(bare, 5, 6)
	if got := nsTypes(bare); !slices.Equal(got, []specs.LinuxNamespaceType{"user"}) {
		t.Errorf("bare spec namespaces %q, want [user]", got)
	}
}

func mount(t *testing.T, s *specs.Spec, dest string) specs.Mount {
	t.Helper()
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m
		}
	}
	t.Fatalf("no mount on %s", dest)
	return specs.Mount{}
}

func nsTypes(s *specs.Spec) []specs.LinuxNamespaceType {
	var types []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		types = append(types, ns.Type)
	}
	return types
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
