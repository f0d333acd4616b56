// Package profile owns berth-runc's built-in descriptions of itself: the
// default OCI spec that `berth-runc spec` writes (and its rootless variant),
// and the runtime-spec features document that `berth-runc features` prints.
//
// The default spec has the shape of `runc spec`, so bundles and scripts
// written for runc work unchanged, and the confinement of Docker's default
// container, which is at least as tight as runc's: Docker's 14
// capabilities (none inheritable, none ambient), its masked and read-only
// paths, a device cgroup that denies everything but the standard devices,
// a read-only /sys, and Docker's default seccomp profile (for those
// capabilities). Other differences from runc: the hostname ("berth"), and a
// cgroup namespace on every host (runc adds it only on cgroup v2 hosts).
//
// Everything here is plain data built from runtime-spec types and the
// seccomp package's profile; the package touches the host only to read the
// kernel's last capability number. It imports only runtime/seccomp.
package profile

import (
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/runtime/seccomp"
)

// Hostname is the hostname of the default spec.
const Hostname = "berth"

// defaultCaps are the capabilities a default container keeps: Docker's 14.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// allowedDevices are the devices a default container may use (after a
// deny-all rule), as Docker allows them: mknod of any device node, and
// the standard character devices and ptys.
func allowedDevices() []specs.LinuxDeviceCgroup {
	c := func(major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: access}
		if major >= 0 {
			d.Major = &major
		}
		if minor >= 0 {
			d.Minor = &minor
		}
		return d
	}
	anyMknodBlock := specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "m"}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		c(-1, -1, "m"), anyMknodBlock,
		c(1, 3, "rwm"), c(1, 5, "rwm"), c(1, 7, "rwm"), c(1, 8, "rwm"), c(1, 9, "rwm"),
		c(5, 0, "rwm"), c(5, 1, "rwm"), c(5, 2, "rwm"), c(136, -1, "rwm"),
	}
}

// Default returns the spec that `berth-runc spec` writes: the same shape and
// content as `runc spec`, with hostname "berth". Each call returns a new
// spec the caller may modify.
func Default() *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: true,
			User:     specs.User{UID: 0, GID: 0},
			Args:     []string{"sh"},
			Env: []string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"TERM=xterm",
			},
			Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  clone(defaultCaps),
				Effective: clone(defaultCaps),
				Permitted: clone(defaultCaps),
			},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024},
			},
			NoNewPrivileges: true,
		},
		Root: &specs.Root{
			Path:     "rootfs",
			Readonly: true,
		},
		Hostname: Hostname,
		Mounts: []specs.Mount{
			{
				Destination: "/proc",
				Type:        "proc",
				Source:      "proc",
			},
			{
				Destination: "/dev",
				Type:        "tmpfs",
				Source:      "tmpfs",
				Options:     []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			},
			{
				Destination: "/dev/pts",
				Type:        "devpts",
				Source:      "devpts",
				Options:     []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			},
			{
				Destination: "/dev/shm",
				Type:        "tmpfs",
				Source:      "shm",
				Options:     []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"},
			},
			{
				Destination: "/dev/mqueue",
				Type:        "mqueue",
				Source:      "mqueue",
				Options:     []string{"nosuid", "noexec", "nodev"},
			},
			{
				Destination: "/sys",
				Type:        "sysfs",
				Source:      "sysfs",
				Options:     []string{"nosuid", "noexec", "nodev", "ro"},
			},
			{
				Destination: "/sys/fs/cgroup",
				Type:        "cgroup",
				Source:      "cgroup",
				Options:     []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
			},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: allowedDevices(),
			},
			Seccomp: seccomp.DefaultProfileFor(defaultCaps),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.CgroupNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi",
				"/proc/asound",
				"/proc/kcore",
				"/proc/keys",
				"/proc/latency_stats",
				"/proc/timer_list",
				"/proc/timer_stats",
				"/proc/sched_debug",
				"/sys/firmware",
				"/proc/scsi",
				"/sys/devices/virtual/tpm",
				"/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{
				"/proc/bus",
				"/proc/fs",
				"/proc/irq",
				"/proc/sys",
				"/proc/sysrq-trigger",
			},
		},
	}
}

// Rootless turns a spec into the rootless variant as `runc spec --rootless`
// does, for a user whose effective ids are uid and gid:
//   - the network namespace is dropped (an unprivileged user cannot set up
//     its devices) and a user namespace is added, mapping uid and gid to 0
//     with size 1;
//   - the sysfs mount on /sys becomes a read-only rbind of the host's /sys,
//     as sysfs cannot be mounted without owning the network namespace;
//   - uid= and gid= mount options are removed (the ids are not mapped);
//   - linux.resources is removed, as cgroup limits need delegation.
//
// Like runc, it keeps the /sys/fs/cgroup mount.
func Rootless(s *specs.Spec, uid, gid uint32) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	var namespaces []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace || ns.Type == specs.UserNamespace {
			continue
		}
		namespaces = append(namespaces, ns)
	}
	s.Linux.Namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uid, Size: 1}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: gid, Size: 1}}

	mounts := make([]specs.Mount, 0, len(s.Mounts))
	for _, m := range s.Mounts {
		if filepath.Clean(m.Destination) == "/sys" {
			mounts = append(mounts, specs.Mount{
				Destination: "/sys",
				Type:        "none",
				Source:      "/sys",
				Options:     []string{"rbind", "nosuid", "noexec", "nodev", "ro"},
			})
			continue
		}
		var options []string
		for _, o := range m.Options {
			if strings.HasPrefix(o, "uid=") || strings.HasPrefix(o, "gid=") {
				continue
			}
			options = append(options, o)
		}
		m.Options = options
		mounts = append(mounts, m)
	}
	s.Mounts = mounts
	s.Linux.Resources = nil
}

func clone(s []string) []string {
	return append([]string(nil), s...)
}
