package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The binary form of a Program: magic, flags (u32), instruction count (u32),
// then each instruction as code (u16), jt, jf (u8), k (u32); little endian.
var programMagic = [4]byte{'B', 'S', 'C', '1'}

const programHeader = 12

// MarshalBinary encodes the program so that the parent compiles it and the
// container's init only loads it.
func (p *Program) MarshalBinary() ([]byte, error) {
	if len(p.Filter) == 0 || len(p.Filter) > maxInsns {
		return nil, fmt.Errorf("seccomp program has %d instructions (1..%d)", len(p.Filter), maxInsns)
	}
	if uint64(p.Flags) > 0xffffffff {
		return nil, fmt.Errorf("seccomp flags %#x out of range", p.Flags)
	}
	b := make([]byte, programHeader, programHeader+8*len(p.Filter))
	copy(b, programMagic[:])
	binary.LittleEndian.PutUint32(b[4:], uint32(p.Flags))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(p.Filter)))
	for _, f := range p.Filter {
		b = binary.LittleEndian.AppendUint16(b, f.Code)
		b = append(b, f.Jt, f.Jf)
		b = binary.LittleEndian.AppendUint32(b, f.K)
	}
	return b, nil
}

// UnmarshalBinary decodes a program written by MarshalBinary.
func (p *Program) UnmarshalBinary(b []byte) error {
	if len(b) < programHeader || [4]byte(b[:4]) != programMagic {
		return errors.New("seccomp program: bad header")
	}
	flags := binary.LittleEndian.Uint32(b[4:])
	n := binary.LittleEndian.Uint32(b[8:])
	if n == 0 || n > maxInsns || uint64(len(b)) != programHeader+8*uint64(n) {
		return fmt.Errorf("seccomp program: %d instructions in %d bytes", n, len(b))
	}
	filter := make([]unix.SockFilter, n)
	for i := range filter {
		in := b[programHeader+8*i:]
		filter[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(in), Jt: in[2], Jf: in[3], K: binary.LittleEndian.Uint32(in[4:])}
	}
	p.Filter, p.Flags = filter, uint(flags)
	return nil
}
