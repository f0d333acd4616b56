package profile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// TestFeaturesJSON checks the document as a client (containerd, podman)
// reads it: by the schema's field names.
func TestFeaturesJSON(t *testing.T) {
	b, err := json.Marshal(Features("1.2.3-test"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["ociVersionMin"] != "1.0.0" || doc["ociVersionMax"] != specs.Version {
		t.Errorf("versions %v..%v, want 1.0.0..%s", doc["ociVersionMin"], doc["ociVersionMax"], specs.Version)
	}
	if got := strings.Join(stringsOf(t, doc["hooks"]), " "); got != "prestart createRuntime createContainer startContainer poststart poststop" {
		t.Errorf("hooks %q", got)
	}
	opts := stringsOf(t, doc["mountOptions"])
	for _, o := range []string{"ro", "rbind", "rprivate", "nosymfollow", "tmpcopyup", "rro", "strictatime"} {
		if !slices.Contains(opts, o) {
			t.Errorf("mountOptions lack %s", o)
		}
	}
	// runc's list, less acl and noacl.
	const runcOptions = "async atime bind defaults dev diratime dirsync exec iversion lazytime loud mand " +
		"noatime nodev nodiratime noexec noiversion nolazytime nomand norelatime nostrictatime nosuid " +
		"nosymfollow private ratime rbind rdev rdiratime relatime remount rexec rnoatime rnodev " +
		"rnodiratime rnoexec rnorelatime rnostrictatime rnosuid rnosymfollow ro rprivate rrelatime rro " +
		"rrw rshared rslave rstrictatime rsuid rsymfollow runbindable rw shared silent slave " +
		"strictatime suid symfollow sync tmpcopyup unbindable"
	if got := strings.Join(opts, " "); got != runcOptions {
		t.Errorf("mountOptions %q, want %q", got, runcOptions)
	}

	linux, _ := doc["linux"].(map[string]any)
	if linux == nil {
		t.Fatalf("no linux section in %s", b)
	}
	if got := strings.Join(stringsOf(t, linux["namespaces"]), " "); got != "cgroup ipc mount network pid time user uts" {
		t.Errorf("namespaces %q", got)
	}
	caps := stringsOf(t, linux["capabilities"])
	for _, c := range []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_AUDIT_READ"} {
		if !slices.Contains(caps, c) {
			t.Errorf("capabilities lack %s", c)
		}
	}
	wantBools := map[string]bool{
		"cgroup.v1": true, "cgroup.v2": true, "cgroup.systemd": false, "cgroup.systemdUser": false,
		"seccomp.enabled": true, "apparmor.enabled": false, "selinux.enabled": false,
		"intelRdt.enabled": false, "mountExtensions.idmap.enabled": false,
	}
	for path, want := range wantBools {
		v := any(linux)
		for _, k := range strings.Split(path, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		if v != want {
			t.Errorf("linux.%s = %v, want %v", path, v, want)
		}
	}
	ann, _ := doc["annotations"].(map[string]any)
	if ann["io.berth.runtime.version"] != "1.2.3-test" {
		t.Errorf("annotations %v, want io.berth.runtime.version=1.2.3-test", ann)
	}

	// And it reads back into the schema's Go type.
	var f features.Features
	if err := json.Unmarshal(b, &f); err != nil || f.Linux == nil || *f.Linux.Cgroup.V2 != true {
		t.Fatalf("features do not read back: %v", err)
	}
}

// TestFeaturesCapabilitiesFollowKernel checks the capability list against
// the running kernel's cap_last_cap.
func TestFeaturesCapabilitiesFollowKernel(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Fatalf("read cap_last_cap: %v", err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	caps := Features("x").Linux.Capabilities
	want := min(last+1, len(capNames))
	if len(caps) != want {
		t.Fatalf("%d capabilities, kernel's last is %d: want %d", len(caps), last, want)
	}
	if caps[21] != "CAP_SYS_ADMIN" || caps[0] != "CAP_CHOWN" {
		t.Fatalf("capabilities are not in kernel number order: %q", caps)
	}
}

func TestCapabilitiesFromCapLastCap(t *testing.T) {
	dir := t.TempDir()
	old := capLastCapPath
	t.Cleanup(func() { capLastCapPath = old })

	capLastCapPath = filepath.Join(dir, "cap_last_cap")
	os.WriteFile(capLastCapPath, []byte("37\n"), 0o644)
	if caps := Capabilities(); len(caps) != 38 || caps[37] != "CAP_AUDIT_READ" {
		t.Errorf("cap_last_cap 37: %d caps ending %q, want 38 ending CAP_AUDIT_READ", len(caps), caps[len(caps)-1])
	}
	// A newer kernel than the table: only the names berth knows.
	os.WriteFile(capLastCapPath, []byte("63\n"), 0o644)
	if caps := Capabilities(); len(caps) != len(capNames) {
		t.Errorf("cap_last_cap 63: %d caps, want %d", len(caps), len(capNames))
	}
	capLastCapPath = filepath.Join(dir, "missing")
	if caps := Capabilities(); len(caps) != len(capNames) || caps[40] != "CAP_CHECKPOINT_RESTORE" {
		t.Errorf("unreadable cap_last_cap: %d caps, want all %d", len(caps), len(capNames))
	}
}

func stringsOf(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("%v is not a JSON array", v)
	}
	var out []string
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			t.Fatalf("%v is not a string", e)
		}
		out = append(out, s)
	}
	return out
}
