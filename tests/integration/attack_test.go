package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostDisk returns the path and major:minor of a block device of the host.
func hostDisk(t *testing.T) (string, uint32, uint32) {
	t.Helper()
	for _, p := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"} {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			return p, unix.Major(st.Rdev), unix.Minor(st.Rdev)
		}
	}
	t.Fatal("no host block device found to attack")
	return "", 0, 0
}

// TestDefaultProfileStopsEscapes runs, as root in a container with the
// default profile, the classic ways out of a container; each must fail.
func TestDefaultProfileStopsEscapes(t *testing.T) {
	disk, major, minor := hostDisk(t)
	hostHostname, _ := os.Hostname()
	attacks := []struct{ name, script string }{
		{"mount", "mount -t tmpfs none /tmp"},
		{"unshare-user", "unshare -U true"},
		{"unshare-mount", "unshare -m true"},
		{"kernel-module", "insmod /lib/modules/x.ko || modprobe dummy || [ -z \"$(cat /proc/modules 2>/dev/null | head -0)\" ] && false"},
		{"sysrq-trigger", "echo h > /proc/sysrq-trigger"},
		{"kcore", "[ -s /proc/kcore ] || head -c 1 /proc/kcore | grep -q ."},
		{"write-sys", "echo 1 > /sys/kernel/profiling || echo x > /sys/class/net/lo/ifalias"},
		{"host-disk", fmt.Sprintf("head -c 512 %s > /dev/null", disk)},
		{"mknod-disk", fmt.Sprintf("mknod /dev/berthdisk b %d %d && head -c 512 /dev/berthdisk > /dev/null", major, minor)},
		// This host refuses opening block device nodes outside devtmpfs to
		// everyone, so the line above can't tell a device cgroup from none;
		// the kernel log device can (see TestDeviceCgroupControl).
		{"mknod-kmsg", "mknod /dev/berthkmsg c 1 11 && head -c 1 /dev/berthkmsg > /dev/null"},
		{"mknod-kmsg-privileged", "PRIVILEGED"},
		{"hostname", "hostname pwned-host"},
		// busybox's date reports a failed set only on stderr: check the clock.
		{"time", "date -s 2001-01-01 >/dev/null; [ \"$(date +%Y)\" = 2001 ]"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			script := a.script
			b := newBundle(t, "sh", "-c", "")
			if script == "PRIVILEGED" {
				// Every capability and no seccomp filter: only the
				// default device rules stand in the way.
				script = "mknod /dev/berthkmsg c 1 11 && head -c 1 /dev/berthkmsg > /dev/null"
				b.Spec.Linux.Seccomp = nil
				all := hostBoundingCaps(t)
				b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
			}
			b.Spec.Process.Args = []string{"sh", "-c", "(" + script + ") 2>/dev/null && echo ESCAPED || echo blocked"}
			r := b.run("attack-" + a.name)
			if strings.TrimSpace(r.Stdout) != "blocked" {
				t.Errorf("%s: %q (stderr %q)", a.script, r.Stdout, r.Stderr)
			}
		})
	}
	if y := time.Now().Year(); y < 2020 {
		t.Errorf("the host's clock was set back to %d", y)
	}
	if h, _ := os.Hostname(); h != hostHostname {
		t.Errorf("the host's hostname changed to %q", h)
	}
}

// TestNoHostProcessesVisible: the container sees only its own processes.
func TestNoHostProcessesVisible(t *testing.T) {
	b := newBundle(t, "sh", "-c", "ls /proc | grep -c '^[0-9]'")
	r := b.run("attack-ps")
	// sh, and the grep/ls of the pipeline: at most 3 pids.
	if n := strings.TrimSpace(r.Stdout); n != "2" && n != "3" {
		t.Errorf("the container sees %s processes", n)
	}
}

// TestDeviceCgroupControl: without the default device rules the same
// privileged node-and-read works, so the mknod attacks above measure the
// device cgroup.
func TestDeviceCgroupControl(t *testing.T) {
	b := newBundle(t, "sh", "-c", "(mknod /dev/berthkmsg c 1 11 && head -c 1 /dev/berthkmsg > /dev/null) 2>/dev/null && echo READ || echo blocked")
	b.Spec.Linux.Resources = nil
	b.Spec.Linux.Seccomp = nil
	all := hostBoundingCaps(t)
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	if r := b.run("device-control"); strings.TrimSpace(r.Stdout) != "READ" {
		t.Fatalf("without device rules the kernel log could not be read: %q %q", r.Stdout, r.Stderr)
	}
}
