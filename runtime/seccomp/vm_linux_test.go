package seccomp

import (
	"encoding/binary"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// call is one system call as the kernel hands it to a seccomp filter.
type call struct {
	arch uint32
	nr   uint32
	args [6]uint64
	ip   uint64
}

// data encodes c as struct seccomp_data of a little-endian kernel, each
// 32-bit word stored big-endian because x/net/bpf's VM loads words in
// network byte order (the kernel loads them in host order).
func (c call) data() []byte {
	words := make([]uint32, 16)
	words[0], words[1] = c.nr, c.arch
	words[2], words[3] = uint32(c.ip), uint32(c.ip>>32)
	for i, a := range c.args {
		words[4+2*i], words[5+2*i] = uint32(a), uint32(a>>32)
	}
	b := make([]byte, 64)
	for i, w := range words {
		binary.BigEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// vm runs compiled filters in golang.org/x/net/bpf's classic-BPF interpreter.
type vm struct {
	t  testing.TB
	vm *bpf.VM
	p  *Program
}

func newVM(t testing.TB, p *Program) *vm {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(p.Filter))
	for i, f := range p.Filter {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("filter has instructions x/net/bpf cannot decode")
	}
	for i, in := range insns {
		switch in.(type) {
		case bpf.LoadAbsolute, bpf.ALUOpConstant, bpf.Jump, bpf.JumpIf, bpf.RetConstant:
		default:
			t.Fatalf("instruction %d (%v) is not one the compiler should emit", i, in)
		}
	}
	v, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("x/net/bpf rejects the filter: %v", err)
	}
	return &vm{t: t, vm: v, p: p}
}

func (v *vm) run(c call) uint32 {
	v.t.Helper()
	r, err := v.vm.Run(c.data())
	if err != nil {
		v.t.Fatalf("run %+v: %v", c, err)
	}
	return uint32(r)
}

// describe renders a SECCOMP_RET_* value for failure messages.
func describe(ret uint32) string {
	data := ret & unix.SECCOMP_RET_DATA
	switch ret & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_KILL_PROCESS:
		return "KILL_PROCESS"
	case unix.SECCOMP_RET_KILL_THREAD:
		return "KILL_THREAD"
	case unix.SECCOMP_RET_TRAP:
		return "TRAP"
	case unix.SECCOMP_RET_ERRNO:
		return "ERRNO(" + unix.ErrnoName(unix.Errno(data)) + "=" + itoa(data) + ")"
	case unix.SECCOMP_RET_TRACE:
		return "TRACE(" + itoa(data) + ")"
	case unix.SECCOMP_RET_LOG:
		return "LOG"
	case unix.SECCOMP_RET_ALLOW:
		return "ALLOW"
	}
	return "unknown(" + itoa(ret) + ")"
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
)

func retErrno(e unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }

// nr returns a syscall's number on an architecture or fails the test.
func nr(t testing.TB, a specs.Arch, name string) uint32 {
	t.Helper()
	n, ok := SyscallNumber(a, name)
	if !ok {
		t.Fatalf("no syscall %s on %s", name, a)
	}
	return n
}

func uintp(v uint) *uint { return &v }
