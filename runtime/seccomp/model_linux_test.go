package seccomp

import (
	"math/rand"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// model decides a call straight from the config, the way the package
// documentation states the semantics; TestAgainstModel checks the compiled
// filters against it.
func model(t *testing.T, s *specs.LinuxSeccomp, h *host, c call) uint32 {
	t.Helper()
	listed := map[specs.Arch]bool{h.native.name: true}
	for _, a := range s.Architectures {
		listed[a] = true
	}
	var ar *arch
	for _, a := range h.runnable {
		if !listed[a.name] || a.audit != c.arch {
			continue
		}
		if a.audit == unix.AUDIT_ARCH_X86_64 && (c.nr >= x32SyscallBit) != a.x32 {
			continue
		}
		ar = a
	}
	if ar == nil {
		return unix.SECCOMP_RET_KILL_PROCESS
	}
	def, err := action(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		t.Fatal(err)
	}
	arg := func(i uint) uint64 {
		if ar.bits64 {
			return c.args[i]
		}
		return uint64(uint32(c.args[i]))
	}
	trunc := func(v uint64) uint64 {
		if ar.bits64 {
			return v
		}
		return uint64(uint32(v))
	}
	var (
		best     uint32
		found    bool
		max      uint32
		anyNamed bool
	)
	consider := func(act uint32) {
		if !found || precedence(act) > precedence(best) {
			best, found = act, true
		}
	}
	named := func(n uint32) {
		if !anyNamed || n > max {
			max, anyNamed = n, true
		}
	}
	for _, r := range s.Syscalls {
		act, err := action(r.Action, r.ErrnoRet)
		if err != nil {
			t.Fatal(err)
		}
		all := true
		for _, a := range r.Args {
			if !holds(a.Op, arg(a.Index), trunc(a.Value), trunc(a.ValueTwo)) {
				all = false
			}
		}
		for _, name := range r.Names {
			if n, ok := ar.lookup(name); ok {
				named(n)
				if n == c.nr && all {
					consider(act)
				}
			}
			if !ar.mux || len(r.Args) > 0 {
				continue
			}
			row, _ := syscallIndex(name)
			if mux := syscallMux[row]; mux != 0 && mux&muxIPC == 0 {
				n := nr(t, ar.name, "socketcall")
				named(n)
				if c.nr == n && uint32(c.args[0]) == uint32(mux) {
					consider(act)
				}
			} else if mux != 0 {
				n := nr(t, ar.name, "ipc")
				named(n)
				if c.nr == n && uint32(c.args[0])&0xffff == uint32(mux&^muxIPC) {
					consider(act)
				}
			}
		}
	}
	if found {
		return best
	}
	stub := s.DefaultAction != specs.ActAllow && s.DefaultAction != specs.ActLog && s.DefaultAction != specs.ActTrace
	if stub && anyNamed && c.nr > max {
		return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	return def
}

// TestAgainstModel compiles random configs and compares the filter's
// decisions on random calls with the model.
func TestAgainstModel(t *testing.T) {
	t.Run("amd64", func(t *testing.T) {
		testAgainstModel(t, amd64, [][]specs.Arch{nil, {specs.ArchX86_64, specs.ArchX86, specs.ArchX32}, {specs.ArchX86}, {specs.ArchX32, specs.ArchS390X}},
			[]uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386, unix.AUDIT_ARCH_AARCH64})
	})
	t.Run("arm64", func(t *testing.T) {
		testAgainstModel(t, hostARM64, [][]specs.Arch{nil, {specs.ArchAARCH64, specs.ArchARM}, {specs.ArchARM, specs.ArchX86}},
			[]uint32{unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM, unix.AUDIT_ARCH_X86_64})
	})
}

func testAgainstModel(t *testing.T, h *host, archSets [][]specs.Arch, audits []uint32) {
	rng := rand.New(rand.NewSource(1))
	names := []string{"read", "write", "openat", "close", "mmap", "socket", "bind", "send", "personality",
		"clone", "clone3", "mkdir", "mkdirat", "shmat", "semop", "socketcall", "ipc", "arch_prctl", "set_tls",
		"cacheflush", "no_such_call_berth"}
	values := []uint64{0, 1, 2, 8, 0xff, 0xffffffff, 0x1_0000_0000, 0x1_0000_0001, 0xff_0000_0000, 0xffffffff_ffffffff, 0x8000_0000_0000_0000}
	actions := []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKillProcess, specs.ActKill, specs.ActTrap, specs.ActTrace, specs.ActLog}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual}
	pick := func(v []uint64) uint64 {
		x := v[rng.Intn(len(v))]
		switch rng.Intn(4) {
		case 0:
			x++
		case 1:
			x--
		}
		return x
	}
	errnoFor := func(a specs.LinuxSeccompAction) *uint {
		if (a == specs.ActErrno || a == specs.ActTrace) && rng.Intn(2) == 0 {
			return uintp(uint(rng.Intn(200)))
		}
		return nil
	}
	for i := 0; i < 400; i++ {
		s := &specs.LinuxSeccomp{Architectures: archSets[rng.Intn(len(archSets))]}
		s.DefaultAction = actions[rng.Intn(len(actions))]
		s.DefaultErrnoRet = errnoFor(s.DefaultAction)
		for n := rng.Intn(12); n >= 0; n-- {
			r := specs.LinuxSyscall{Action: actions[rng.Intn(len(actions))]}
			r.ErrnoRet = errnoFor(r.Action)
			for k := 1 + rng.Intn(3); k > 0; k-- {
				r.Names = append(r.Names, names[rng.Intn(len(names))])
			}
			for k := rng.Intn(4); k > 0; k-- {
				r.Args = append(r.Args, specs.LinuxSeccompArg{Index: uint(rng.Intn(3)), Op: ops[rng.Intn(len(ops))], Value: pick(values), ValueTwo: pick(values)})
			}
			s.Syscalls = append(s.Syscalls, r)
		}
		v := mustCompile(t, s, h)
		for j := 0; j < 300; j++ {
			var c call
			switch rng.Intn(10) {
			case 0:
				c.arch = audits[2] // foreign
			case 1, 2, 3:
				c.arch = audits[1]
			default:
				c.arch = audits[0]
			}
			var table *arch
			switch c.arch {
			case unix.AUDIT_ARCH_I386:
				table = archX86
			case unix.AUDIT_ARCH_X86_64:
				table = archX86_64
				if rng.Intn(4) == 0 {
					table = archX32
				}
			case unix.AUDIT_ARCH_AARCH64:
				table = archAARCH64
			case unix.AUDIT_ARCH_ARM:
				table = archARM
			}
			if n, ok := table.lookup(names[rng.Intn(len(names))]); ok && rng.Intn(5) > 0 {
				c.nr = n
			} else {
				c.nr = uint32(rng.Intn(600))
				if rng.Intn(10) == 0 {
					c.nr = rng.Uint32()
				}
			}
			for k := range c.args {
				c.args[k] = pick(values)
			}
			if rng.Intn(3) == 0 {
				c.args[0] = uint64(rng.Intn(25)) | uint64(rng.Intn(3))<<16
			}
			if got, want := v.run(c), model(t, s, h, c); got != want {
				t.Fatalf("config %d call %+v: filter %s, model %s\nconfig: %+v", i, c, describe(got), describe(want), s)
			}
		}
	}
}
