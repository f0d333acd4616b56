package seccomp

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"

	mprofile "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DockerDefaultCapabilities are the 14 capabilities Docker gives a container
// by default; DefaultProfile is Docker's profile for this set.
var DockerDefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// DefaultProfile returns Docker's default seccomp profile, taken from the
// Go module github.com/moby/profiles/seccomp (the data Docker itself ships),
// resolved for Docker's default capabilities, this architecture and this
// kernel. It denies with EPERM everything a container does not need: mount,
// umount2, unshare and setns (creating a user namespace included), keyctl,
// bpf, kexec_load, init_module, reboot, ...; clone3 gets ENOSYS so that libc
// falls back to clone, whose namespace flags are checked; ptrace is allowed
// on kernels >= 4.8. Each call returns a new value the caller may modify.
func DefaultProfile() *specs.LinuxSeccomp {
	return DefaultProfileFor(DockerDefaultCapabilities)
}

// DefaultProfileFor returns Docker's default profile for a container whose
// bounding set is caps: CAP_SYS_ADMIN, for one, allows mount and unshare.
func DefaultProfileFor(caps []string) *specs.LinuxSeccomp {
	return resolveProfile(mprofile.DefaultProfile(), caps, dockerArch(runtime.GOARCH), kernelVersion())
}

// dockerArch returns the architecture name Docker's profile conditions use
// for a GOARCH.
func dockerArch(goarch string) string {
	switch goarch {
	case "386":
		return "x86"
	case "loong64":
		return "loongarch64"
	case "mips64le":
		return "mipsel64"
	case "mipsle":
		return "mipsel"
	}
	return goarch // amd64, arm64, arm, mips64, ppc64, ppc64le, riscv64, s390x
}

// dockerNative returns the SCMP_ARCH_* name of one of those names: the
// entry of the profile's archMap to use.
func dockerNative(arch string) (specs.Arch, bool) {
	switch arch {
	case "amd64":
		return specs.ArchX86_64, true
	case "x86":
		return specs.ArchX86, true
	case "arm64":
		return specs.ArchAARCH64, true
	case "arm":
		return specs.ArchARM, true
	case "loongarch64":
		return specs.ArchLOONGARCH64, true
	case "mips64":
		return specs.ArchMIPS64, true
	case "mipsel64":
		return specs.ArchMIPSEL64, true
	case "mipsel":
		return specs.ArchMIPSEL, true
	case "ppc64":
		return specs.ArchPPC64, true
	case "ppc64le":
		return specs.ArchPPC64LE, true
	case "riscv64":
		return specs.ArchRISCV64, true
	case "s390x":
		return specs.ArchS390X, true
	}
	return "", false
}

type kernel struct{ major, minor uint64 }

func (k kernel) atLeast(v *mprofile.KernelVersion) bool {
	return k.major > v.Kernel || (k.major == v.Kernel && k.minor >= v.Major)
}

// kernelVersion is the running kernel's major.minor; 0.0 when unknown, which
// leaves out the rules that need a minimum kernel.
var kernelVersion = sync.OnceValue(func() kernel {
	var uts unix.Utsname
	var k kernel
	if unix.Uname(&uts) == nil {
		fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &k.major, &k.minor)
	}
	return k
})

// resolveProfile applies the conditions of a Docker profile (capabilities,
// architecture, minimum kernel) and returns a plain OCI config, as Docker's
// daemon does before it hands the profile to the runtime.
func resolveProfile(p *mprofile.Seccomp, caps []string, arch string, k kernel) *specs.LinuxSeccomp {
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  cloneUint(p.DefaultErrnoRet),
		Flags:            slices.Clone(p.Flags),
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
		Architectures:    slices.Clone(p.Architectures),
	}
	if native, ok := dockerNative(arch); ok {
		for _, m := range p.ArchMap {
			if m.Arch == native {
				out.Architectures = append(append(out.Architectures, m.Arch), m.SubArches...)
				break
			}
		}
	}
	for _, sc := range p.Syscalls {
		if !applies(sc, caps, arch, k) {
			continue
		}
		names := slices.Clone(sc.Names)
		if sc.Name != "" {
			names = append(names, sc.Name)
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
			Names:    names,
			Action:   sc.Action,
			ErrnoRet: cloneUint(sc.ErrnoRet),
			Args:     slices.Clone(sc.Args),
		})
	}
	return out
}

// applies evaluates a rule's includes (all must hold) and excludes (any
// excludes) as Docker does.
func applies(sc *mprofile.Syscall, caps []string, arch string, k kernel) bool {
	if ex := sc.Excludes; ex != nil {
		if slices.Contains(ex.Arches, arch) {
			return false
		}
		for _, c := range ex.Caps {
			if slices.Contains(caps, c) {
				return false
			}
		}
		if ex.MinKernel != nil && k.atLeast(ex.MinKernel) {
			return false
		}
	}
	if in := sc.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
			return false
		}
		for _, c := range in.Caps {
			if !slices.Contains(caps, c) {
				return false
			}
		}
		if in.MinKernel != nil && !k.atLeast(in.MinKernel) {
			return false
		}
	}
	return true
}

func cloneUint(p *uint) *uint {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// LoadDockerProfile reads a seccomp profile in Docker's JSON format (what
// `docker run --security-opt seccomp=FILE` takes) and resolves it for a
// container whose bounding set is caps, as DefaultProfileFor does for the
// built-in one.
func LoadDockerProfile(data []byte, caps []string) (*specs.LinuxSeccomp, error) {
	var p mprofile.Seccomp
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("seccomp profile is not valid JSON: %w", err)
	}
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp profile has no defaultAction")
	}
	return resolveProfile(&p, caps, dockerArch(runtime.GOARCH), kernelVersion()), nil
}
