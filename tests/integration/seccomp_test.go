package integration

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/runtime/seccomp"
)

// TestSeccompErrno: a denied syscall returns the configured errno; an
// allowed one works.
func TestSeccompErrno(t *testing.T) {
	for _, nnp := range []bool{true, false} {
		b := newBundle(t, "sh", "-c", "mkdir /tmp/denied; touch /tmp/allowed && echo touched")
		b.Spec.Root.Readonly = false
		b.Spec.Process.NoNewPrivileges = nnp
		exdev := uint(18) // EXDEV: easy to recognise
		b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{
				Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &exdev,
			}},
		}
		r := b.run("seccomp-errno")
		if !strings.Contains(r.Stderr, "cross-device") {
			t.Errorf("noNewPrivileges=%v: mkdir under the filter: %q, want EXDEV (Invalid cross-device link)", nnp, r.Stderr)
		}
		if !strings.Contains(r.Stdout, "touched") {
			t.Errorf("noNewPrivileges=%v: an allowed syscall failed: %q %q", nnp, r.Stdout, r.Stderr)
		}
	}
}

// TestSeccompDefaultProfile: Docker's default profile blocks mount and a
// user namespace, and lets a shell work.
func TestSeccompDefaultProfile(t *testing.T) {
	b := newBundle(t, "sh", "-c", "mount -t tmpfs none /tmp && echo MOUNTED; unshare -U true && echo UNSHARED; echo alive")
	b.Spec.Linux.Seccomp = seccomp.DefaultProfile()
	// Every capability, so that only the filter stands in the way.
	all := hostBoundingCaps(t)
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	r := b.run("seccomp-default")
	if r.Code != 0 || !strings.Contains(r.Stdout, "alive") {
		t.Fatalf("run under the default profile: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if strings.Contains(r.Stdout, "MOUNTED") || strings.Contains(r.Stdout, "UNSHARED") {
		t.Errorf("the default profile let these through: %q", r.Stdout)
	}
}

func TestSeccompBadProfile(t *testing.T) {
	b := newBundle(t, "true")
	b.Spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
	r := b.run("seccomp-bad")
	if r.Code == 0 || !strings.Contains(r.Stderr, "linux.seccomp") {
		t.Fatalf("a bad seccomp action: %d %q", r.Code, r.Stderr)
	}
	assertNothingLeft(t, b, "seccomp-bad")
}

// TestSeccompDefaultProfileControl: the same privileged shell without the
// filter can mount, so TestSeccompDefaultProfile measures the filter.
func TestSeccompDefaultProfileControl(t *testing.T) {
	b := newBundle(t, "sh", "-c", "mount -t tmpfs none /tmp && echo MOUNTED")
	b.Spec.Linux.Seccomp = nil
	all := hostBoundingCaps(t)
	b.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	if r := b.run("seccomp-control"); !strings.Contains(r.Stdout, "MOUNTED") {
		t.Fatalf("without a filter a privileged container could not mount: %q %q", r.Stdout, r.Stderr)
	}
}
