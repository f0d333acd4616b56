package cgroups

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// run interprets the program for one access, as the kernel would: the unit
// tests check the generated filters with it, and the root tests check the
// kernel agrees.
func run(prog []insn, typ, acc uint8, major, minor uint32) uint64 {
	var r [11]uint64
	ctx := [3]uint32{uint32(acc)<<16 | uint32(typ), major, minor}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.code {
		case opLdxW:
			r[in.dst] = uint64(ctx[in.off/4])
		case opMovX:
			r[in.dst] = r[in.src]
		case opMovK:
			r[in.dst] = uint64(int64(in.imm))
		case opAndK:
			r[in.dst] &= uint64(int64(in.imm))
		case opRshK:
			r[in.dst] >>= uint(in.imm)
		case opJneK:
			if r[in.dst] != uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case opJeqK:
			if r[in.dst] == uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case opExit:
			return r[0]
		default:
			panic("unknown opcode")
		}
	}
	panic("program fell off its end")
}

// allowedRef is the kernel's v1 rule for one access, written from the
// documentation independently of the program generator: with a deny-all
// default, some exception must match the device and hold every requested
// bit; with allow-all, no exception may match the device and share a bit.
func allowedRef(s *devState, typ byte, acc uint8, major, minor int64) bool {
	for _, k := range s.keys {
		if k.typ != typ || (k.major != wildcard && k.major != major) || (k.minor != wildcard && k.minor != minor) {
			continue
		}
		if s.allowAll && s.acc[k]&acc != 0 {
			return false
		}
		if !s.allowAll && s.acc[k]&acc == acc {
			return true
		}
	}
	return s.allowAll
}

func TestDeviceProgramMatchesRules(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	cases := map[string][]specs.LinuxDeviceCgroup{
		"default profile": append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, DefaultDeviceRules()...),
		"allow all":       {{Allow: true}},
		"deny some": {
			{Allow: true, Access: "rwm"},
			{Allow: false, Type: "b", Major: n(8), Access: "w"},
			{Allow: false, Type: "c", Major: n(1), Minor: n(9), Access: "rw"},
		},
		"partial grants": {
			{Allow: false},
			{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "rwm"},
			{Allow: false, Type: "c", Major: n(1), Minor: n(3), Access: "w"},
			{Allow: true, Type: "a", Major: n(7), Minor: n(-1), Access: "r"},
			{Allow: true, Type: "b", Major: n(8), Minor: n(0), Access: "m"},
		},
	}
	for name, rules := range cases {
		norm, err := normalizeDevices(rules)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := emulateDevices(newDevState(true), norm)
		prog := deviceProgram(s)
		for _, typ := range []byte{'b', 'c'} {
			for acc := uint8(1); acc <= accAll; acc++ {
				for _, major := range []int64{0, 1, 5, 7, 8, 136} {
					for _, minor := range []int64{0, 3, 5, 9, 42} {
						bt := uint8(devChar)
						if typ == 'b' {
							bt = devBlock
						}
						got := run(prog, bt, acc, uint32(major), uint32(minor)) == 1
						if want := allowedRef(s, typ, acc, major, minor); got != want {
							t.Errorf("%s: %c %d:%d %s: program says %v, rules say %v", name, typ, major, minor, accessString(acc), got, want)
						}
					}
				}
			}
		}
	}
}

func TestDeviceProgramSpotChecks(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	rules, _ := normalizeDevices(append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		append(DefaultDeviceRules(), specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: n(10), Minor: n(200), Access: "r"})...))
	prog := deviceProgram(emulateDevices(newDevState(true), rules))
	for _, c := range []struct {
		typ, acc     uint8
		major, minor uint32
		want         uint64
	}{
		{devChar, accRead | accWrite, 1, 3, 1},   // /dev/null
		{devChar, accRead, 1, 9, 1},              // /dev/urandom
		{devChar, accRead | accWrite, 136, 4, 1}, // a pty
		{devBlock, accRead, 254, 0, 0},           // a host disk
		{devBlock, accMknod, 254, 0, 1},          // but mknod of it is allowed
		{devChar, accRead, 10, 200, 1},           // tun, read-only
		{devChar, accWrite, 10, 200, 0},
		{devChar, accRead, 1, 1, 0}, // /dev/mem
	} {
		if got := run(prog, c.typ, c.acc, c.major, c.minor); got != c.want {
			t.Errorf("type %d access %d %d:%d: got %d, want %d", c.typ, c.acc, c.major, c.minor, got, c.want)
		}
	}
	// The layout the kernel reads: code, dst|src<<4, off, imm.
	b := encode([]insn{{code: opLdxW, dst: 5, src: 1, off: 4}, {code: opMovK, dst: 0, imm: -1}})
	want := []byte{0x61, 0x15, 4, 0, 0, 0, 0, 0, 0xb7, 0x00, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if string(b) != string(want) {
		t.Errorf("encode = % x, want % x", b, want)
	}
}
