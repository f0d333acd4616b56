package cgroups

import "encoding/binary"

// A cgroup v2 device filter is an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE: the kernel runs it on every open and mknod
// of a device node with a struct bpf_cgroup_dev_ctx
//
//	u32 access_type  (access << 16) | type
//	u32 major
//	u32 minor
//
// and allows the access when it returns 1. The program below is generated
// from the same emulated state as the v1 rules, so both versions grant
// exactly the same accesses:
//
//	r2 = ctx->access_type; r3 = r2 & 0xffff (type); r4 = r2 >> 16 (access)
//	r5 = ctx->major; r6 = ctx->minor
//	for each exception:
//	    if type, access, major or minor do not match: go to the next one
//	    return the exception's verdict
//	return the default verdict

// insn is one eBPF instruction.
type insn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
}

// Opcodes used by the device program.
const (
	opLdxW   = 0x61 // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
	opMovX   = 0xbf // BPF_ALU64 | BPF_MOV | BPF_X: dst = src
	opMovK   = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
	opAndK   = 0x57 // BPF_ALU64 | BPF_AND | BPF_K: dst &= imm
	opRshK   = 0x77 // BPF_ALU64 | BPF_RSH | BPF_K: dst >>= imm
	opJneK   = 0x55 // BPF_JMP | BPF_JNE | BPF_K: if dst != imm: pc += off
	opJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K: if dst == imm: pc += off
	opExit   = 0x95 // BPF_JMP | BPF_EXIT: return r0
	skipNext = -1   // placeholder offset: to the end of the exception's block
)

// deviceProgram generates the filter for state s.
func deviceProgram(s *devState) []insn {
	prog := []insn{
		{code: opLdxW, dst: 2, src: 1, off: 0},
		{code: opMovX, dst: 3, src: 2},
		{code: opAndK, dst: 3, imm: 0xffff},
		{code: opMovX, dst: 4, src: 2},
		{code: opRshK, dst: 4, imm: 16},
		{code: opLdxW, dst: 5, src: 1, off: 4},
		{code: opLdxW, dst: 6, src: 1, off: 8},
	}
	verdict := func(allow bool) []insn {
		v := int32(0)
		if allow {
			v = 1
		}
		return []insn{{code: opMovK, dst: 0, imm: v}, {code: opExit}}
	}
	for _, k := range s.keys {
		acc := s.acc[k]
		var b []insn
		typ := int32(devChar)
		if k.typ == 'b' {
			typ = devBlock
		}
		b = append(b, insn{code: opJneK, dst: 3, imm: typ, off: skipNext})
		if s.allowAll {
			// A denial applies when the request asks for any of its bits.
			if acc != accAll {
				b = append(b,
					insn{code: opMovX, dst: 7, src: 4},
					insn{code: opAndK, dst: 7, imm: int32(acc)},
					insn{code: opJeqK, dst: 7, imm: 0, off: skipNext})
			}
		} else if acc != accAll {
			// A grant applies when it holds every bit the request asks for.
			b = append(b,
				insn{code: opMovX, dst: 7, src: 4},
				insn{code: opAndK, dst: 7, imm: int32(^acc & accAll)},
				insn{code: opJneK, dst: 7, imm: 0, off: skipNext})
		}
		if k.major != wildcard {
			b = append(b, insn{code: opJneK, dst: 5, imm: int32(k.major), off: skipNext})
		}
		if k.minor != wildcard {
			b = append(b, insn{code: opJneK, dst: 6, imm: int32(k.minor), off: skipNext})
		}
		b = append(b, verdict(!s.allowAll)...)
		for i := range b {
			if b[i].off == skipNext {
				b[i].off = int16(len(b) - i - 1)
			}
		}
		prog = append(prog, b...)
	}
	return append(prog, verdict(s.allowAll)...)
}

// encode lays the program out as the kernel reads it (struct bpf_insn,
// little-endian on every architecture berth builds for).
func encode(prog []insn) []byte {
	out := make([]byte, 8*len(prog))
	for i, in := range prog {
		b := out[8*i:]
		b[0] = in.code
		b[1] = in.src<<4 | in.dst&0x0f
		binary.LittleEndian.PutUint16(b[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(b[4:], uint32(in.imm))
	}
	return out
}
