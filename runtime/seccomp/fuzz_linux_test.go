package seccomp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// FuzzCompile feeds JSON seccomp configs to Compile: it must either refuse
// them with an error or produce a filter the kernel's rules accept (at most
// 4096 instructions, jumps in range, ending in a return) that decides every
// call with one of the config's actions, and that survives MarshalBinary.
// Seeds: testdata/fuzz/FuzzCompile and the profiles below.
func FuzzCompile(f *testing.F) {
	def, _ := json.Marshal(DefaultProfile())
	f.Add(def)
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s specs.LinuxSeccomp
		if json.Unmarshal(data, &s) != nil {
			return
		}
		for _, h := range []*host{hostAMD64, hostARM64} {
			p, err := compile(&s, h)
			if err != nil {
				continue
			}
			if len(p.Filter) == 0 || len(p.Filter) > maxInsns {
				t.Fatalf("filter of %d instructions", len(p.Filter))
			}
			v := newVM(t, p) // checks jump bounds and the final return
			possible := map[uint32]bool{unix.SECCOMP_RET_KILL_PROCESS: true, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS): true}
			def, _ := action(s.DefaultAction, s.DefaultErrnoRet)
			possible[def] = true
			for _, r := range s.Syscalls {
				a, _ := action(r.Action, r.ErrnoRet)
				possible[a] = true
			}
			for _, arch := range []uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM} {
				for _, nr := range []uint32{0, 1, 2, 3, 56, 63, 102, 117, 165, 222, 435, 1000, x32SyscallBit | 2, 0xf0005, 0xffffffff} {
					for _, arg := range []uint64{0, 1, 0xffffffff, 1 << 32, ^uint64(0)} {
						c := call{arch: arch, nr: nr, args: [6]uint64{arg, arg, arg ^ 1, arg, arg, arg}}
						if got := v.run(c); !possible[got] {
							t.Fatalf("call %+v decided %s, which no rule of the config gives", c, describe(got))
						}
					}
				}
			}
			b, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var q Program
			if err := q.UnmarshalBinary(b); err != nil || len(q.Filter) != len(p.Filter) || q.Flags != p.Flags {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
