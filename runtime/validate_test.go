package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "web-1", "x_y.z+1", strings.Repeat("a", 1024)} {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v, want ok", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "a/b", "a b", "é", strings.Repeat("a", 1025)} {
		if err := ValidateID(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ValidateID(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func goodSpec(t *testing.T) (*specs.Spec, string) {
	bundle := t.TempDir()
	os.Mkdir(filepath.Join(bundle, "rootfs"), 0o755)
	return &specs.Spec{
		Version: "1.2.0",
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
		Root:    &specs.Root{Path: "rootfs"},
		Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}}},
	}, bundle
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*specs.Spec)
		field  string
	}{
		{"version", func(s *specs.Spec) { s.Version = "invalid" }, "ociVersion"},
		{"process", func(s *specs.Spec) { s.Process = nil }, "process"},
		{"args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args"},
		{"cwd", func(s *specs.Spec) { s.Process.Cwd = "rel" }, "process.cwd"},
		{"fdcwd", func(s *specs.Spec) { s.Process.Cwd = "/proc/self/fd/3" }, "process.cwd"},
		{"root", func(s *specs.Spec) { s.Root = nil }, "root.path"},
		{"rootfs", func(s *specs.Spec) { s.Root.Path = "missing" }, "root.path"},
		{"linux", func(s *specs.Spec) { s.Linux = nil }, "linux"},
		{"nstype", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "nope"})
		}, "linux.namespaces[2].type"},
		{"nsdup", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.MountNamespace})
		}, "listed twice"},
		{"nspath", func(s *specs.Spec) { s.Linux.Namespaces[0].Path = "relative" }, "linux.namespaces[0].path"},
		{"maps", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, "linux.uidMappings"},
		{"mapsnons", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{Size: 1}}
		}, "linux.uidMappings"},
		{"hostname", func(s *specs.Spec) { s.Hostname = "x"; s.Linux.Namespaces = s.Linux.Namespaces[:1] }, "hostname"},
		{"timens", func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}
		}, "linux.timeOffsets"},
		{"rlimit", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}
		}, "process.rlimits[0]"},
		{"mountdest", func(s *specs.Spec) { s.Mounts = []specs.Mount{{Type: "tmpfs"}} }, "mounts[0].destination"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, bundle := goodSpec(t)
			if _, err := Validate(s, bundle); err != nil {
				t.Fatalf("the good spec is refused: %v", err)
			}
			tc.mutate(s)
			_, err := Validate(s, bundle)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate = %v, want an invalid-config error naming %s", err, tc.field)
			}
		})
	}
}

func TestValidateReturnsResolvedRootfs(t *testing.T) {
	s, bundle := goodSpec(t)
	os.Symlink("rootfs", filepath.Join(bundle, "link"))
	s.Root.Path = "link"
	got, err := Validate(s, bundle)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(filepath.Join(bundle, "rootfs"))
	if got != want {
		t.Errorf("rootfs = %s, want %s", got, want)
	}
}

func TestValidateSysctl(t *testing.T) {
	s, bundle := goodSpec(t)
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace}, specs.LinuxNamespace{Type: specs.IPCNamespace})
	for _, ok := range []string{"net.ipv4.ip_forward", "kernel.shmmax", "fs.mqueue.msg_max", "kernel.msgmax", "kernel.domainname"} {
		s.Linux.Sysctl = map[string]string{ok: "1"}
		if _, err := Validate(s, bundle); err != nil {
			t.Errorf("sysctl %s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"kernel.panic", "vm.overcommit_memory", "fs.file-max", "kernel.core_pattern"} {
		s.Linux.Sysctl = map[string]string{bad: "1"}
		if _, err := Validate(s, bundle); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), bad) {
			t.Errorf("host sysctl %s: %v", bad, err)
		}
	}
	// net.* without a network namespace of its own would change the host's.
	s.Linux.Namespaces = s.Linux.Namespaces[:2]
	s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	if _, err := Validate(s, bundle); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "network") {
		t.Errorf("net sysctl without a network namespace: %v", err)
	}
}
