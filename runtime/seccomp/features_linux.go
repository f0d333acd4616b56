package seccomp

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// Features describes what Compile and Load support on this host, in the
// runtime-spec features schema (for `berth-runc features`).
func Features() *features.Seccomp {
	enabled := true
	f := &features.Seccomp{Enabled: &enabled}
	if _, err := hostFor(runtime.GOARCH); err != nil {
		enabled = false
		return f
	}
	for _, a := range []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog,
	} {
		f.Actions = append(f.Actions, string(a))
	}
	for _, o := range []specs.LinuxSeccompOperator{
		specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
	} {
		f.Operators = append(f.Operators, string(o))
	}
	for _, a := range knownArchs {
		if a != "SCMP_ARCH_NATIVE" {
			f.Archs = append(f.Archs, string(a))
		}
	}
	f.KnownFlags = []string{string(specs.LinuxSeccompFlagLog), string(specs.LinuxSeccompFlagSpecAllow)}
	f.SupportedFlags = []string{}
	if flagSupported(unix.SECCOMP_FILTER_FLAG_LOG) {
		f.SupportedFlags = append(f.SupportedFlags, string(specs.LinuxSeccompFlagLog))
	}
	if flagSupported(unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW) {
		f.SupportedFlags = append(f.SupportedFlags, string(specs.LinuxSeccompFlagSpecAllow))
	}
	return f
}
