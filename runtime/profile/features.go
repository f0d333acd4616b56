package profile

import (
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/berth-project/berth/runtime/seccomp"
)

// VersionAnnotation is the features annotation carrying berth-runc's version.
const VersionAnnotation = "io.berth.runtime.version"

// hookKinds are the OCI hook lists berth-runc runs, in lifecycle order.
var hookKinds = []string{
	"prestart",
	"createRuntime",
	"createContainer",
	"startContainer",
	"poststart",
	"poststop",
}

// mountOptions are the generic mount options berth-runc recognises (not the
// filesystem-specific data it passes through to mount(2)).
var mountOptions = []string{
	"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
	"iversion", "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime",
	"noexec", "noiversion", "nolazytime", "nomand", "norelatime",
	"nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind",
	"rdev", "rdiratime", "relatime", "remount", "rexec", "rnoatime", "rnodev",
	"rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime", "rnosuid",
	"rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw", "rshared",
	"rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw",
	"shared", "silent", "slave", "strictatime", "suid", "symfollow", "sync",
	"tmpcopyup", "unbindable",
}

// namespaces are the namespace types berth-runc can create or join.
var namespaces = []string{
	string(specs.CgroupNamespace),
	string(specs.IPCNamespace),
	string(specs.MountNamespace),
	string(specs.NetworkNamespace),
	string(specs.PIDNamespace),
	string(specs.TimeNamespace),
	string(specs.UserNamespace),
	string(specs.UTSNamespace),
}

// capNames maps capability numbers (the index) to their names, as defined
// in linux/capability.h.
var capNames = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// capLastCapPath is where the kernel publishes its highest capability
// number.
var capLastCapPath = "/proc/sys/kernel/cap_last_cap"

// Capabilities returns the names of the capabilities both berth-runc and the
// running kernel know, indexed by capability number. When the kernel's last
// capability cannot be read, it returns every name berth-runc knows.
func Capabilities() []string {
	n := len(capNames)
	if b, err := os.ReadFile(capLastCapPath); err == nil {
		if last, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && last >= 0 && last+1 < n {
			n = last + 1
		}
	}
	return clone(capNames[:n])
}

// Features returns what berth-runc supports, in the runtime-spec features
// schema, for `berth-runc features`. version is berth-runc's version,
// reported in the "io.berth.runtime.version" annotation.
func Features(version string) *features.Features {
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         clone(hookKinds),
		MountOptions:  clone(mountOptions),
		Linux: &features.Linux{
			Namespaces:   clone(namespaces),
			Capabilities: Capabilities(),
			Cgroup: &features.Cgroup{
				V1:          boolp(true),
				V2:          boolp(true),
				Systemd:     boolp(false),
				SystemdUser: boolp(false),
			},
			Seccomp:  seccomp.Features(),
			Apparmor: &features.Apparmor{Enabled: boolp(false)},
			Selinux:  &features.Selinux{Enabled: boolp(false)},
			IntelRdt: &features.IntelRdt{Enabled: boolp(false)},
			MountExtensions: &features.MountExtensions{
				IDMap: &features.IDMap{Enabled: boolp(false)},
			},
			NetDevices: &features.NetDevices{Enabled: boolp(false)},
		},
		Annotations: map[string]string{VersionAnnotation: version},
	}
}

func boolp(b bool) *bool { return &b }
