package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/runtime/caps"
)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
}

// Validate checks a config before anything is created, naming the field at
// fault. It returns the absolute rootfs path.
func Validate(s *specs.Spec, bundle string) (string, error) {
	if s == nil {
		return "", invalid("empty config")
	}
	if !ociVersion().MatchString(s.Version) {
		return "", invalid("ociVersion %q: not a version of the runtime spec (1.x.y)", s.Version)
	}
	if s.Process == nil {
		return "", invalid("process: required")
	}
	if err := validateProcess(s.Process); err != nil {
		return "", err
	}
	if s.Root == nil || s.Root.Path == "" {
		return "", invalid("root.path: required")
	}
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	rootfs, err := filepath.EvalSymlinks(rootfs)
	if err != nil {
		return "", invalid("root.path %s: %v", s.Root.Path, unwrapPathErr(err))
	}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return "", invalid("root.path %s: not a directory", s.Root.Path)
	}
	if s.Linux == nil {
		return "", invalid("linux: required on Linux")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range s.Linux.Namespaces {
		if _, ok := nsFlags[ns.Type]; !ok {
			return "", invalid("linux.namespaces[%d].type %q: unknown namespace type", i, ns.Type)
		}
		if seen[ns.Type] {
			return "", invalid("linux.namespaces[%d]: %s namespace listed twice", i, ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" {
			if !filepath.IsAbs(ns.Path) {
				return "", invalid("linux.namespaces[%d].path %q: must be absolute", i, ns.Path)
			}
			if _, err := os.Stat(ns.Path); err != nil {
				return "", invalid("linux.namespaces[%d].path %s: %v", i, ns.Path, unwrapPathErr(err))
			}
		}
	}
	newUser := hasNewNS(s, specs.UserNamespace)
	if newUser && (len(s.Linux.UIDMappings) == 0 || len(s.Linux.GIDMappings) == 0) {
		return "", invalid("linux.uidMappings and linux.gidMappings: required with a new user namespace")
	}
	if !seen[specs.UserNamespace] && (len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0) {
		return "", invalid("linux.uidMappings: given without a user namespace")
	}
	if s.Hostname != "" && !hasNS(s, specs.UTSNamespace) {
		return "", invalid("hostname: needs a uts namespace (the host's can't be changed)")
	}
	if s.Domainname != "" && !hasNS(s, specs.UTSNamespace) {
		return "", invalid("domainname: needs a uts namespace (the host's can't be changed)")
	}
	if len(s.Linux.TimeOffsets) > 0 && !hasNewNS(s, specs.TimeNamespace) {
		return "", invalid("linux.timeOffsets: needs a new time namespace")
	}
	for clock := range s.Linux.TimeOffsets {
		if clock != "monotonic" && clock != "boottime" {
			return "", invalid("linux.timeOffsets: unknown clock %q", clock)
		}
	}
	for key := range s.Linux.Sysctl {
		if err := validateSysctl(s, key); err != nil {
			return "", err
		}
	}
	if s.Linux.MountLabel != "" && !lsmEnabled("selinux") {
		return "", invalid("linux.mountLabel %q: SELinux is not enabled on this host", s.Linux.MountLabel)
	}
	for i, m := range s.Mounts {
		if m.Destination == "" {
			return "", invalid("mounts[%d].destination: required", i)
		}
	}
	return rootfs, nil
}

// ociVersion matches the spec versions berth-runc accepts: 1.MINOR.PATCH
// with an optional pre-release and build suffix. Compiled on first use.
var ociVersion = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^1\.[0-9]+\.[0-9]+(-[0-9A-Za-z.+-]+)?(\+[0-9A-Za-z.-]+)?$`)
})

func validateProcess(p *specs.Process) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return invalid("process.args: must not be empty")
	}
	if p.Cwd == "" {
		return invalid("process.cwd: required")
	}
	if !filepath.IsAbs(p.Cwd) {
		return invalid("process.cwd %q: must be an absolute path", p.Cwd)
	}
	if strings.HasPrefix(filepath.Clean(p.Cwd), "/proc/self/fd") || strings.HasPrefix(filepath.Clean(p.Cwd), "/proc/thread-self/fd") {
		return invalid("process.cwd %q: must not be a file descriptor path", p.Cwd)
	}
	if c := p.Capabilities; c != nil {
		for field, list := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective,
			"inheritable": c.Inheritable, "permitted": c.Permitted, "ambient": c.Ambient} {
			for _, name := range list {
				if _, ok := caps.Number(name); !ok {
					return invalid("process.capabilities.%s: unknown capability %q", field, name)
				}
			}
		}
	}
	if p.ApparmorProfile != "" && !lsmEnabled("apparmor") {
		return invalid("process.apparmorProfile %q: AppArmor is not enabled on this host", p.ApparmorProfile)
	}
	if p.SelinuxLabel != "" && !lsmEnabled("selinux") {
		return invalid("process.selinuxLabel %q: SELinux is not enabled on this host", p.SelinuxLabel)
	}
	for i, rl := range p.Rlimits {
		if _, ok := rlimitTypes[rl.Type]; !ok {
			return invalid("process.rlimits[%d].type %q: unknown rlimit", i, rl.Type)
		}
		if rl.Soft > rl.Hard {
			return invalid("process.rlimits[%d] %s: soft limit above hard limit", i, rl.Type)
		}
	}
	return nil
}

// validateSysctl allows only sysctls that belong to a namespace the
// container has its own of: IPC (kernel.msg*, kernel.sem, kernel.shm*,
// fs.mqueue.*), network (net.*) and UTS (kernel.hostname,
// kernel.domainname). Anything else would change the host.
func validateSysctl(s *specs.Spec, key string) error {
	k := strings.ReplaceAll(key, "/", ".")
	var ns specs.LinuxNamespaceType
	switch {
	case strings.HasPrefix(k, "kernel.msg"), k == "kernel.sem", strings.HasPrefix(k, "kernel.shm"), strings.HasPrefix(k, "fs.mqueue."):
		ns = specs.IPCNamespace
	case strings.HasPrefix(k, "net."):
		ns = specs.NetworkNamespace
	case k == "kernel.hostname", k == "kernel.domainname":
		ns = specs.UTSNamespace
	default:
		return invalid("linux.sysctl %q: not a namespaced sysctl; setting it would change the host", key)
	}
	// A namespace of its own: new, or joined by path (another container's).
	if !hasNS(s, ns) {
		return invalid("linux.sysctl %q: needs the container's own %s namespace", key, ns)
	}
	return nil
}

// lsmEnabled reports whether the host runs the named security module.
func lsmEnabled(name string) bool {
	switch name {
	case "apparmor":
		b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
		return err == nil && strings.TrimSpace(string(b)) == "Y"
	case "selinux":
		_, err := os.Stat("/sys/fs/selinux/enforce")
		return err == nil
	}
	return false
}

func hasNewNS(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	if s.Linux == nil {
		return false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path == ""
		}
	}
	return false
}

func hasNS(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	if s.Linux == nil {
		return false
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
