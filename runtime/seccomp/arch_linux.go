package seccomp

import (
	"fmt"
	"runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// x32SyscallBit marks the syscall numbers of the x32 ABI on x86_64
// (__X32_SYSCALL_BIT); x32 shares AUDIT_ARCH_X86_64 with x86_64.
const x32SyscallBit = 0x40000000

// noSyscall marks, in syscallNrs, a name an architecture does not have.
const noSyscall = 0xffffffff

// syscallIndex returns the row of a name in syscallNames / syscallNrs.
func syscallIndex(name string) (int, bool) {
	h := uint32(2166136261) // FNV-1a, as mksyscalls.go built syscallHash
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	const mask = len(syscallHash) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		r := int(syscallHash[i])
		if r == 0 {
			return 0, false
		}
		if syscallNames[r-1] == name {
			return r - 1, true
		}
	}
}

// muxIPC marks, in syscallMux, a call number of ipc(2) (the others are
// socketcall(2)'s).
const muxIPC = 0x40

// arch is one ABI the kernel reports in seccomp_data.arch.
type arch struct {
	name   specs.Arch
	audit  uint32
	bits64 bool // 64-bit syscall arguments
	column int  // in syscallNrs
	// x32 and x86_64 share an audit arch and split on x32SyscallBit.
	x32 bool
	// mux: the socket and ipc calls also go through socketcall(2) and ipc(2).
	mux bool
}

// nr returns the number of the syscall in row i of syscallNrs.
func (a *arch) nr(i int) (uint32, bool) {
	n := syscallNrs[i][a.column]
	return n, n != noSyscall
}

func (a *arch) lookup(name string) (uint32, bool) {
	i, ok := syscallIndex(name)
	if !ok {
		return 0, false
	}
	return a.nr(i)
}

// Columns of syscallNrs, in the order of mksyscalls.go's abis.
var (
	archX86_64  = &arch{name: specs.ArchX86_64, audit: unix.AUDIT_ARCH_X86_64, bits64: true, column: 0}
	archX86     = &arch{name: specs.ArchX86, audit: unix.AUDIT_ARCH_I386, column: 1, mux: true}
	archX32     = &arch{name: specs.ArchX32, audit: unix.AUDIT_ARCH_X86_64, bits64: true, column: 2, x32: true}
	archAARCH64 = &arch{name: specs.ArchAARCH64, audit: unix.AUDIT_ARCH_AARCH64, bits64: true, column: 3}
	archARM     = &arch{name: specs.ArchARM, audit: unix.AUDIT_ARCH_ARM, column: 4}
)

// host describes what one Go architecture's kernel can run.
type host struct {
	native   *arch
	runnable []*arch // native first
	little   bool    // byte order of seccomp_data
}

// The hosts berth has tables for (plain variables: no map to build at
// start-up).
var (
	hostAMD64 = &host{native: archX86_64, runnable: []*arch{archX86_64, archX86, archX32}, little: true}
	host386   = &host{native: archX86, runnable: []*arch{archX86}, little: true}
	hostARM64 = &host{native: archAARCH64, runnable: []*arch{archAARCH64, archARM}, little: true}
	hostARM   = &host{native: archARM, runnable: []*arch{archARM}, little: true}
)

// knownArchs are the SCMP_ARCH_* names of the runtime spec (and libseccomp's
// SCMP_ARCH_NATIVE). Names the host cannot run are accepted and ignored.
var knownArchs = []specs.Arch{
	specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
	specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
	specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
	specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
	specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
	specs.ArchSH, specs.ArchSHEB, "SCMP_ARCH_NATIVE",
}

func hostFor(goarch string) (*host, error) {
	switch goarch {
	case "amd64":
		return hostAMD64, nil
	case "386":
		return host386, nil
	case "arm64":
		return hostARM64, nil
	case "arm":
		return hostARM, nil
	}
	return nil, fmt.Errorf("seccomp is not supported on GOARCH %s (berth has syscall tables for amd64, 386, arm64 and arm)", goarch)
}

// selectArchs returns the architectures of the filter: the native one, then
// those listed that the host can run, in the host's order.
func (h *host) selectArchs(names []specs.Arch) ([]*arch, error) {
	want := map[specs.Arch]bool{h.native.name: true}
	for _, n := range names {
		known := false
		for _, k := range knownArchs {
			if n == k {
				known = true
				break
			}
		}
		if !known {
			return nil, fmt.Errorf("unknown seccomp architecture %q (known: %s)", n, archNames())
		}
		want[n] = true
	}
	var out []*arch
	for _, a := range h.runnable {
		if want[a.name] {
			out = append(out, a)
		}
	}
	return out, nil
}

func archNames() string {
	s := make([]string, len(knownArchs))
	for i, a := range knownArchs {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// SyscallNumber returns the number of a system call on an architecture
// (SCMP_ARCH_*), as the compiled filter sees it (x32 numbers include
// __X32_SYSCALL_BIT). It reports false for names the tables do not have.
func SyscallNumber(a specs.Arch, name string) (uint32, bool) {
	for _, x := range []*arch{archX86_64, archX86, archX32, archAARCH64, archARM} {
		if x.name == a {
			return x.lookup(name)
		}
	}
	return 0, false
}

// NativeArch returns the SCMP_ARCH_* name of the running architecture, or
// "" when seccomp is not supported on it.
func NativeArch() specs.Arch {
	if h, err := hostFor(runtime.GOARCH); err == nil {
		return h.native.name
	}
	return ""
}
