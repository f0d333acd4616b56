// Package caps applies a process's Linux capabilities: the bounding set,
// the effective, permitted and inheritable sets, and the ambient set.
//
// Every call acts on the calling thread's credentials only (that is what
// the kernel's interfaces do), so the container's init applies them on
// the thread it then execs from. It imports nothing from berth.
package caps

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// names lists the capabilities by number (linux/capability.h).
var names = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Names returns every capability name berth knows, by number.
func Names() []string { return append([]string(nil), names[:]...) }

// Number returns the number of a capability name ("CAP_SYS_ADMIN" or "SYS_ADMIN").
func Number(name string) (int, bool) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, v := range names {
		if v == n {
			return i, true
		}
	}
	return 0, false
}

// Last returns the highest capability number the running kernel knows.
func Last() int {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	return len(names) - 1
}

// Set is a process's capabilities as bit masks.
type Set struct {
	Bounding, Effective, Inheritable, Permitted, Ambient uint64
}

// FromSpec converts the config's capabilities. A name berth does not know
// is an error naming it; a capability the running kernel lacks is left out
// and reported in skipped, as runc does.
func FromSpec(c *specs.LinuxCapabilities) (s Set, skipped []string, err error) {
	if c == nil {
		return s, nil, nil
	}
	last := Last()
	conv := func(field string, list []string) (uint64, error) {
		var m uint64
		for _, name := range list {
			n, ok := Number(name)
			if !ok {
				return 0, fmt.Errorf("process.capabilities.%s: unknown capability %q", field, name)
			}
			if n > last {
				skipped = append(skipped, name)
				continue
			}
			m |= 1 << uint(n)
		}
		return m, nil
	}
	if s.Bounding, err = conv("bounding", c.Bounding); err != nil {
		return
	}
	if s.Effective, err = conv("effective", c.Effective); err != nil {
		return
	}
	if s.Inheritable, err = conv("inheritable", c.Inheritable); err != nil {
		return
	}
	if s.Permitted, err = conv("permitted", c.Permitted); err != nil {
		return
	}
	if s.Ambient, err = conv("ambient", c.Ambient); err != nil {
		return
	}
	return s, skipped, nil
}

// KeepCaps keeps the permitted set across the switch away from uid 0.
func KeepCaps(on bool) error {
	v := 0
	if on {
		v = 1
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, uintptr(v), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_KEEPCAPS): %w", err)
	}
	return nil
}

// DropBounding removes from the bounding set everything not in s.Bounding.
func DropBounding(s Set) error {
	last := Last()
	for n := 0; n <= last; n++ {
		if s.Bounding&(1<<uint(n)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop %s from the bounding set: %w", nameOf(n), err)
		}
	}
	return nil
}

// Apply sets the effective, permitted and inheritable sets, then raises
// the ambient capabilities that are also permitted and inheritable.
func Apply(s Set) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := 0; i < 2; i++ {
		data[i].Effective = uint32(s.Effective >> (32 * i))
		data[i].Permitted = uint32(s.Permitted >> (32 * i))
		data[i].Inheritable = uint32(s.Inheritable >> (32 * i))
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// The kernel allows an ambient capability only when it is also
	// permitted and inheritable. Configs that list ambient capabilities
	// without inheritable ones are common (`runc spec` writes one since
	// CVE-2022-29162 emptied the inheritable set), and runc ignores what
	// can't be raised: so do we, rather than fail such containers.
	raisable := s.Ambient & s.Permitted & s.Inheritable
	for n := 0; n <= Last(); n++ {
		if raisable&(1<<uint(n)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0); err != nil {
			return fmt.Errorf("raise ambient %s: %w", nameOf(n), err)
		}
	}
	return nil
}

func nameOf(n int) string {
	if n < len(names) {
		return names[n]
	}
	return "capability " + strconv.Itoa(n)
}
