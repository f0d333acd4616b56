package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// maxInsns is the kernel's limit on a classic-BPF program (BPF_MAXINSNS).
const maxInsns = 4096

// label names a place in a program; it is bound to the next instruction
// emitted after asm.bind.
type label int32

// insn is one instruction before layout. Conditional jumps name both targets
// as labels; assemble turns them into 8-bit offsets, inserting unconditional
// jumps (trampolines) where a target is more than 255 instructions away.
type insn struct {
	code   uint16
	k      uint32
	jt, jf label // conditional jumps
	to     label // ja
	bind   label // >0: this entry is not an instruction but binds a label
	trampT bool  // jt goes through a trampoline after the jump
	trampF bool
}

type asm struct {
	ins    []insn
	labels int
}

func (a *asm) newLabel() label {
	a.labels++
	return label(a.labels)
}

func (a *asm) bind(l label) { a.ins = append(a.ins, insn{bind: l}) }

// ld loads the 32-bit word at off of seccomp_data into A.
func (a *asm) ld(off uint32) {
	a.ins = append(a.ins, insn{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: off})
}

// and computes A &= k.
func (a *asm) and(k uint32) {
	a.ins = append(a.ins, insn{code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, k: k})
}

func (a *asm) ret(k uint32) { a.ins = append(a.ins, insn{code: unix.BPF_RET | unix.BPF_K, k: k}) }

func (a *asm) ja(to label) { a.ins = append(a.ins, insn{code: unix.BPF_JMP | unix.BPF_JA, to: to}) }

// jmp emits a conditional jump (op is unix.BPF_JEQ, BPF_JGT, BPF_JGE or
// BPF_JSET) comparing A with k. A zero label means the next instruction.
func (a *asm) jmp(op uint16, k uint32, jt, jf label) {
	a.ins = append(a.ins, insn{code: unix.BPF_JMP | op | unix.BPF_K, k: k, jt: jt, jf: jf})
}

// size is the number of instructions an entry takes once laid out.
func (in *insn) size() int {
	switch {
	case in.bind != 0:
		return 0
	case isCond(in.code):
		n := 1
		if in.trampT {
			n++
		}
		if in.trampF {
			n++
		}
		return n
	default:
		return 1
	}
}

func isCond(code uint16) bool {
	return code&0x07 == unix.BPF_JMP && code&0xf0 != unix.BPF_JA
}

// assemble lays the program out and resolves the labels.
func (a *asm) assemble() ([]unix.SockFilter, error) {
	for {
		pos, where := a.layout()
		grew := false
		for i := range a.ins {
			in := &a.ins[i]
			if in.bind != 0 || !isCond(in.code) {
				continue
			}
			if !in.trampT && in.jt != 0 && where[in.jt]-(pos[i]+1) > 255 {
				in.trampT, grew = true, true
			}
			if !in.trampF && in.jf != 0 && where[in.jf]-(pos[i]+1) > 255 {
				in.trampF, grew = true, true
			}
		}
		if !grew {
			return a.emit(pos, where)
		}
	}
}

// layout returns each entry's position and each label's target.
func (a *asm) layout() (pos []int, where []int) {
	pos = make([]int, len(a.ins))
	where = make([]int, a.labels+1)
	p := 0
	for i := range a.ins {
		in := &a.ins[i]
		pos[i] = p
		if in.bind != 0 {
			where[in.bind] = p
		}
		p += in.size()
	}
	return pos, where
}

func (a *asm) emit(pos, where []int) ([]unix.SockFilter, error) {
	out := make([]unix.SockFilter, 0, pos[len(pos)-1]+a.ins[len(a.ins)-1].size())
	for i := range a.ins {
		in := &a.ins[i]
		if in.bind != 0 {
			continue
		}
		here := pos[i] + 1 // jump offsets count from the next instruction
		switch {
		case isCond(in.code):
			after := pos[i] + in.size() // where a zero label (fall through) goes
			target := func(l label) int {
				if l == 0 {
					return after
				}
				return where[l]
			}
			if target(in.jt) < here || target(in.jf) < here {
				return nil, fmt.Errorf("internal error: backward jump at %d", pos[i])
			}
			f := unix.SockFilter{Code: in.code, K: in.k}
			var tramps [2]label
			n := 0
			if in.trampT {
				f.Jt = uint8(n)
				tramps[n] = in.jt
				n++
			} else {
				f.Jt = uint8(target(in.jt) - here)
			}
			if in.trampF {
				f.Jf = uint8(n)
				tramps[n] = in.jf
				n++
			} else {
				f.Jf = uint8(target(in.jf) - here)
			}
			out = append(out, f)
			for j, l := range tramps[:n] {
				off := where[l] - (here + j + 1)
				out = append(out, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(off)})
			}
		case in.code == unix.BPF_JMP|unix.BPF_JA:
			if where[in.to] < here {
				return nil, fmt.Errorf("internal error: backward jump at %d", pos[i])
			}
			out = append(out, unix.SockFilter{Code: in.code, K: uint32(where[in.to] - here)})
		default:
			out = append(out, unix.SockFilter{Code: in.code, K: in.k})
		}
	}
	if len(out) > maxInsns {
		return nil, fmt.Errorf("seccomp filter has %d instructions, more than the kernel's limit of %d", len(out), maxInsns)
	}
	return out, nil
}
