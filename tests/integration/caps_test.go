package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/caps"
)

func mask(t *testing.T, names ...string) uint64 {
	var m uint64
	for _, n := range names {
		i, ok := caps.Number(n)
		if !ok {
			t.Fatalf("unknown capability %s", n)
		}
		m |= 1 << uint(i)
	}
	return m
}

// capLines reads CapInh/CapPrm/CapEff/CapBnd/CapAmb as the container's
// process sees them in /proc/self/status.
func capLines(t *testing.T, out string) map[string]uint64 {
	t.Helper()
	got := map[string]uint64{}
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("bad status line %q", l)
		}
		got[k] = n
	}
	return got
}

// TestCapabilities: the sets in /proc/self/status equal the requested ones,
// the inheritable set stays empty unless asked for (CVE-2022-29162), and
// ambient capabilities survive the switch to an unprivileged user.
func TestCapabilities(t *testing.T) {
	b := newBundle(t, "cat", "/proc/self/status")
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"},
		Effective: []string{"CAP_CHOWN", "CAP_KILL"},
		Permitted: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
	}
	r := b.run("caps-root")
	if r.Code != 0 {
		t.Fatalf("run: %s", r.Stderr)
	}
	got := capLines(t, r.Stdout)
	want := map[string]uint64{
		"CapBnd": mask(t, "CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"),
		// execve as uid 0 raises the effective set to the permitted one
		// (the kernel's root semantics, as with runc).
		"CapEff": mask(t, "CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
		"CapPrm": mask(t, "CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
		"CapInh": 0,
		"CapAmb": 0,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %016x, want %016x", k, got[k], w)
		}
	}

	// An unprivileged user keeps an ambient capability.
	b = newBundle(t, "cat", "/proc/self/status")
	b.Spec.Process.User = specs.User{UID: 1000, GID: 1000}
	nbs := []string{"CAP_NET_BIND_SERVICE"}
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: nbs, Effective: nbs, Permitted: nbs, Inheritable: nbs, Ambient: nbs}
	r = b.run("caps-ambient")
	if r.Code != 0 {
		t.Fatalf("run: %s", r.Stderr)
	}
	got = capLines(t, r.Stdout)
	m := mask(t, nbs...)
	for _, k := range []string{"CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"} {
		if got[k] != m {
			t.Errorf("uid 1000 with ambient NET_BIND_SERVICE: %s = %016x, want %016x", k, got[k], m)
		}
	}
	if !strings.Contains(r.Stdout, "Uid:\t1000\t1000\t1000\t1000") {
		t.Errorf("process does not run as uid 1000:\n%s", r.Stdout)
	}
}

// TestCapabilitiesEnforced: without CAP_CHOWN, chown fails; with it, works.
func TestCapabilitiesEnforced(t *testing.T) {
	for _, tc := range []struct {
		caps []string
		want string
	}{{[]string{"CAP_KILL"}, "denied"}, {[]string{"CAP_CHOWN"}, "allowed"}} {
		b := newBundle(t, "sh", "-c", "touch /tmp/f && chown 1234 /tmp/f 2>/dev/null && echo allowed || echo denied")
		b.Spec.Root.Readonly = false
		b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: tc.caps, Effective: tc.caps, Permitted: tc.caps}
		r := b.run(fmt.Sprintf("caps-%s", tc.want))
		if strings.TrimSpace(r.Stdout) != tc.want {
			t.Errorf("with %v: chown %q, want %q (stderr %s)", tc.caps, r.Stdout, tc.want, r.Stderr)
		}
	}
}

// TestAmbientWithoutInheritable: `runc spec` lists ambient capabilities but
// no inheritable ones; such a container runs (as with runc), with an empty
// ambient set, since the kernel can't raise those.
func TestAmbientWithoutInheritable(t *testing.T) {
	b := newBundle(t, "cat", "/proc/self/status")
	k := []string{"CAP_KILL"}
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: k, Effective: k, Permitted: k, Ambient: k}
	r := b.run("amb-noinh")
	if r.Code != 0 {
		t.Fatalf("run: %d %s", r.Code, r.Stderr)
	}
	if got := capLines(t, r.Stdout); got["CapAmb"] != 0 || got["CapInh"] != 0 || got["CapPrm"] != mask(t, k...) {
		t.Errorf("caps %v", got)
	}
}

// TestLSMRequestedWithoutLSM: an AppArmor profile or SELinux label asked
// for on a host without them is a clear error, and nothing is left.
func TestLSMRequestedWithoutLSM(t *testing.T) {
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		t.Skip("SELinux is enabled on this host")
	}
	if data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.TrimSpace(string(data)) == "Y" {
		t.Skip("AppArmor is enabled on this host")
	}
	for _, tc := range []struct{ id, want string }{{"lsm-aa", "AppArmor is not enabled"}, {"lsm-se", "SELinux is not enabled"}} {
		b := newBundle(t, "true")
		if tc.id == "lsm-aa" {
			b.Spec.Process.ApparmorProfile = "berth-default"
		} else {
			b.Spec.Process.SelinuxLabel = "system_u:system_r:container_t:s0"
		}
		r := b.run(tc.id)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%s: %d %q, want an error saying %q", tc.id, r.Code, r.Stderr, tc.want)
		}
		assertNothingLeft(t, b, tc.id)
	}
}

// TestRlimitAboveSoftLimit: a container may get a soft limit above the
// caller's, up to the hard limit.
func TestRlimitAboveSoftLimit(t *testing.T) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Max <= 1024 {
		t.Skipf("hard RLIMIT_NOFILE %d leaves no room above a soft limit", cur.Max)
	}
	want := cur.Max
	if want > 1<<20 {
		want = 1 << 20
	}
	// The caller's soft limit is low; the container asks for more.
	b := newBundle(t, "sh", "-c", "ulimit -n; ulimit -Hn")
	b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: want, Hard: want}}
	b.write()
	cmd := exec.Command("sh", "-c", "ulimit -Sn 256 && exec \"$0\" \"$@\"", runcBin, "--root", b.Root, "run", "--bundle", b.Dir, "rlimit-up")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run: %v %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != strconv.FormatUint(want, 10) || f[1] != strconv.FormatUint(want, 10) {
		t.Errorf("container RLIMIT_NOFILE %q, want soft and hard %d", out, want)
	}
}
