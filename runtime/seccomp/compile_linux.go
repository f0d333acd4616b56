package seccomp

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrNotSupported is wrapped by the errors for parts of the OCI seccomp model
// berth does not implement (SCMP_ACT_NOTIFY, listenerPath, some flags).
var ErrNotSupported = errors.New("not supported")

// Program is a compiled seccomp filter, ready for Load.
type Program struct {
	Filter []unix.SockFilter
	// Flags for seccomp(SECCOMP_SET_MODE_FILTER): SECCOMP_FILTER_FLAG_LOG and
	// SECCOMP_FILTER_FLAG_SPEC_ALLOW, from the config's flags.
	Flags uint
}

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

const maxErrno = 4095 // the kernel clamps SECCOMP_RET_ERRNO data to MAX_ERRNO

// seccomp_data args are zero or more of six.
const maxArgs = 6

// Compile turns an OCI seccomp config into a filter for the running
// architecture and the architectures the config lists that the kernel can
// run (x86 and x32 on x86_64, arm on arm64). See the package documentation
// for the semantics.
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	h, err := hostFor(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	return compile(s, h)
}

// cond is one argument condition, normalised.
type cond struct {
	arg        uint
	op         specs.LinuxSeccompOperator
	value, two uint64
}

// alt is one alternative for a syscall: all conds hold → action.
type alt struct {
	conds  []cond
	action uint32
}

// section is one architecture's part of the filter.
type section struct {
	arch  *arch
	rules []rule // in config order
	max   uint32 // highest syscall number the config names
	named bool   // the config names at least one syscall here
}

type rule struct {
	nr  uint32
	alt int32 // in compiler.alts
}

type compiler struct {
	h          *host
	defAction  uint32
	enosysStub bool
	sections   []*section
	alts       []alt
}

func (c *compiler) newAlt(a alt) int32 {
	c.alts = append(c.alts, a)
	return int32(len(c.alts) - 1)
}

func compile(s *specs.LinuxSeccomp, h *host) (*Program, error) {
	if s == nil {
		return nil, errors.New("seccomp: no config")
	}
	if s.ListenerPath != "" {
		return nil, fmt.Errorf("seccomp listenerPath %q: seccomp agents are %w", s.ListenerPath, ErrNotSupported)
	}
	if s.DefaultAction == "" {
		return nil, errors.New("seccomp: defaultAction is required")
	}
	def, err := action(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp defaultAction: %w", err)
	}
	p := &Program{}
	for _, f := range s.Flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			p.Flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			p.Flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		default:
			return nil, fmt.Errorf("seccomp flag %q: %w (berth supports %s and %s)", f, ErrNotSupported,
				specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow)
		}
	}
	archs, err := h.selectArchs(s.Architectures)
	if err != nil {
		return nil, err
	}
	c := &compiler{h: h, defAction: def}
	switch s.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
	default:
		c.enosysStub = def != unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS)
	}
	for _, a := range archs {
		c.sections = append(c.sections, &section{arch: a, rules: make([]rule, 0, 512)})
	}
	for i, sc := range s.Syscalls {
		if err := c.addRule(sc); err != nil {
			return nil, fmt.Errorf("seccomp syscalls[%d]: %w", i, err)
		}
	}
	filter, err := c.generate()
	if err != nil {
		return nil, err
	}
	p.Filter = filter
	return p, nil
}

// action returns the SECCOMP_RET_* value of an OCI action.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	var ret uint32
	switch a {
	case specs.ActKill, specs.ActKillThread:
		ret = unix.SECCOMP_RET_KILL_THREAD
	case specs.ActKillProcess:
		ret = unix.SECCOMP_RET_KILL_PROCESS
	case specs.ActTrap:
		ret = unix.SECCOMP_RET_TRAP
	case specs.ActAllow:
		ret = unix.SECCOMP_RET_ALLOW
	case specs.ActLog:
		ret = unix.SECCOMP_RET_LOG
	case specs.ActErrno:
		e := uint(unix.EPERM)
		if errnoRet != nil {
			e = *errnoRet
		}
		if e > maxErrno {
			return 0, fmt.Errorf("errnoRet %d is larger than the largest errno (%d)", e, maxErrno)
		}
		return unix.SECCOMP_RET_ERRNO | uint32(e), nil
	case specs.ActTrace:
		e := uint(unix.EPERM)
		if errnoRet != nil {
			e = *errnoRet
		}
		if e > 0xffff {
			return 0, fmt.Errorf("errnoRet %d does not fit SCMP_ACT_TRACE's 16-bit data", e)
		}
		return unix.SECCOMP_RET_TRACE | uint32(e), nil
	case specs.ActNotify:
		return 0, fmt.Errorf("action %s: %w (berth has no seccomp agent support)", a, ErrNotSupported)
	default:
		return 0, fmt.Errorf("unknown action %q", a)
	}
	if errnoRet != nil {
		return 0, fmt.Errorf("errnoRet is only valid with %s and %s, not %s", specs.ActErrno, specs.ActTrace, a)
	}
	return ret, nil
}

// precedence orders actions as the kernel does for stacked filters: the
// highest wins.
func precedence(ret uint32) int {
	switch ret & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_KILL_PROCESS:
		return 7
	case unix.SECCOMP_RET_KILL_THREAD:
		return 6
	case unix.SECCOMP_RET_TRAP:
		return 5
	case unix.SECCOMP_RET_ERRNO:
		return 4
	case unix.SECCOMP_RET_USER_NOTIF:
		return 3
	case unix.SECCOMP_RET_TRACE:
		return 2
	case unix.SECCOMP_RET_LOG:
		return 1
	default: // SECCOMP_RET_ALLOW
		return 0
	}
}

func (c *compiler) addRule(sc specs.LinuxSyscall) error {
	if len(sc.Names) == 0 {
		return errors.New("no syscall names")
	}
	act, err := action(sc.Action, sc.ErrnoRet)
	if err != nil {
		return err
	}
	conds := make([]cond, 0, len(sc.Args))
	for _, a := range sc.Args {
		if a.Index >= maxArgs {
			return fmt.Errorf("argument index %d out of range (syscalls have %d arguments)", a.Index, maxArgs)
		}
		switch a.Op {
		case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
			specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		default:
			return fmt.Errorf("unknown operator %q", a.Op)
		}
		conds = append(conds, cond{arg: a.Index, op: a.Op, value: a.Value, two: a.ValueTwo})
	}
	id := int32(-1)
	for _, name := range sc.Names {
		if name == "" {
			return errors.New("empty syscall name")
		}
		row, known := syscallIndex(name)
		if !known {
			continue // unknown here: newer than the tables, or another OS's
		}
		for _, s := range c.sections {
			if nr, ok := s.arch.nr(row); ok {
				if id < 0 {
					id = c.newAlt(alt{conds: conds, action: act})
				}
				s.add(nr, id)
			}
			if s.arch.mux && len(conds) == 0 && syscallMux[row] != 0 {
				c.addMux(s, syscallMux[row], act)
			}
		}
	}
	return nil
}

func (s *section) add(nr uint32, a int32) {
	s.rules = append(s.rules, rule{nr, a})
	if !s.named || nr > s.max {
		s.max, s.named = nr, true
	}
}

// addMux adds the socketcall(2) or ipc(2) form of a socket or SysV IPC call
// (mux is its syscallMux entry).
func (c *compiler) addMux(s *section, mux uint8, act uint32) {
	if mux&muxIPC == 0 {
		if nr, ok := s.arch.lookup("socketcall"); ok {
			s.add(nr, c.newAlt(alt{action: act, conds: []cond{{arg: 0, op: specs.OpEqualTo, value: uint64(mux)}}}))
		}
		return
	}
	if nr, ok := s.arch.lookup("ipc"); ok {
		// ipc(2) takes the IPC version in the upper 16 bits of call.
		s.add(nr, c.newAlt(alt{action: act, conds: []cond{{arg: 0, op: specs.OpMaskedEqual, value: 0xffff, two: uint64(mux &^ muxIPC)}}}))
	}
}

// resolve orders a syscall's alternatives by precedence and drops those that
// can never decide: everything after an unconditional one, and trailing ones
// that give the default action anyway.
func (c *compiler) resolve(alts []alt) []alt {
	if len(alts) == 1 {
		if alts[0].action == c.defAction {
			return nil
		}
		return alts
	}
	slices.SortStableFunc(alts, func(x, y alt) int { return cmp.Compare(precedence(y.action), precedence(x.action)) })
	for i, a := range alts {
		if len(a.conds) == 0 {
			alts = alts[:i+1]
			break
		}
	}
	for len(alts) > 0 && alts[len(alts)-1].action == c.defAction {
		alts = alts[:len(alts)-1]
	}
	return alts
}

// segment is a range of syscall numbers with one outcome: a return value, or
// (alts != nil) argument checks.
type segment struct {
	lo, hi uint32
	ret    uint32
	alts   []alt
}

func (c *compiler) generate() ([]unix.SockFilter, error) {
	n := 0
	for _, s := range c.sections {
		n += len(s.rules)
	}
	a := &asm{ins: make([]insn, 0, n+256)}
	a.ld(offArch)
	// One entry per audit arch: x86_64 and x32 share one.
	type group struct {
		audit     uint32
		main, x32 *section
		entry     label
	}
	var groups []*group
	byAudit := map[uint32]*group{}
	for _, s := range c.sections {
		g := byAudit[s.arch.audit]
		if g == nil {
			g = &group{audit: s.arch.audit, entry: a.newLabel()}
			byAudit[s.arch.audit] = g
			groups = append(groups, g)
		}
		if s.arch.x32 {
			g.x32 = s
		} else {
			g.main = s
		}
	}
	for _, g := range groups {
		a.jmp(unix.BPF_JEQ, g.audit, g.entry, 0)
	}
	a.ret(unix.SECCOMP_RET_KILL_PROCESS) // an architecture not in the filter
	for _, g := range groups {
		a.bind(g.entry)
		a.ld(offNr)
		switch {
		case g.main != nil && g.main.arch == archX86_64:
			// x86_64 numbers are below the x32 bit; x32's have it, and
			// are killed like a foreign architecture when x32 is not listed.
			x32 := a.newLabel()
			a.jmp(unix.BPF_JGE, x32SyscallBit, x32, 0)
			c.tree(a, g.main, 0, x32SyscallBit-1)
			a.bind(x32)
			if g.x32 != nil {
				c.tree(a, g.x32, x32SyscallBit, 0xffffffff)
			} else {
				a.ret(unix.SECCOMP_RET_KILL_PROCESS)
			}
		case g.main != nil:
			c.tree(a, g.main, 0, 0xffffffff)
		default:
			return nil, fmt.Errorf("internal error: x32 without x86_64")
		}
	}
	return a.assemble()
}

// denseNrs bounds the syscall numbers (above an architecture's base) that
// tree groups through an array; the few above (ARM's private calls) are
// sorted.
const denseNrs = 1024

// tree emits the dispatch on the syscall number (in A) for numbers lo..hi.
func (c *compiler) tree(a *asm, s *section, lo, hi uint32) {
	// Group the rules by number, keeping config order within a number:
	// first[nr-lo] and next[i] chain them.
	first := make([]int32, denseNrs)
	for i := range first {
		first[i] = -1
	}
	next := make([]int32, len(s.rules))
	var sparse []uint64 // nr<<32 | rule index
	for i := len(s.rules) - 1; i >= 0; i-- {
		r := s.rules[i]
		if r.nr-lo < denseNrs {
			next[i], first[r.nr-lo] = first[r.nr-lo], int32(i)
		} else {
			sparse = append(sparse, uint64(r.nr)<<32|uint64(i))
		}
	}
	slices.Sort(sparse)

	var segs []segment
	put := func(sg segment) {
		if n := len(segs); n > 0 && sg.alts == nil && segs[n-1].alts == nil && segs[n-1].ret == sg.ret && segs[n-1].hi+1 == sg.lo {
			segs[n-1].hi = sg.hi
			return
		}
		segs = append(segs, sg)
	}
	cursor, done := lo, false
	alts := make([]alt, 0, 8)
	emit := func(nr uint32) {
		if nr > cursor {
			put(segment{lo: cursor, hi: nr - 1, ret: c.defAction})
		}
		sg := segment{lo: nr, hi: nr, ret: c.defAction}
		if res := c.resolve(alts); len(res) > 0 {
			if len(res[0].conds) == 0 {
				sg.ret = res[0].action
			} else {
				sg.alts = slices.Clone(res)
			}
		}
		put(sg)
		if nr == hi {
			done = true
		} else {
			cursor = nr + 1
		}
	}
	for d, i := range first {
		if i < 0 {
			continue
		}
		alts = alts[:0]
		for ; i >= 0; i = next[i] {
			alts = append(alts, c.alts[s.rules[i].alt])
		}
		emit(lo + uint32(d))
	}
	for i := 0; i < len(sparse); {
		nr := uint32(sparse[i] >> 32)
		alts = alts[:0]
		for ; i < len(sparse) && uint32(sparse[i]>>32) == nr; i++ {
			alts = append(alts, c.alts[s.rules[uint32(sparse[i])].alt])
		}
		emit(nr)
	}
	// Above the highest named syscall: ENOSYS (newer than the profile).
	top := hi
	if c.enosysStub && s.named && s.max >= lo && s.max < hi {
		top = s.max
	}
	if !done && cursor <= top {
		put(segment{lo: cursor, hi: top, ret: c.defAction})
	}
	if top < hi {
		put(segment{lo: top + 1, hi: hi, ret: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})
	}
	c.search(a, s, segs)
}

// search emits a binary search over segs, which cover a contiguous range.
func (c *compiler) search(a *asm, s *section, segs []segment) {
	if len(segs) == 1 {
		sg := segs[0]
		if sg.alts == nil {
			a.ret(sg.ret)
			return
		}
		c.checks(a, s, sg.alts)
		return
	}
	mid := len(segs) / 2
	right := a.newLabel()
	a.jmp(unix.BPF_JGE, segs[mid].lo, right, 0)
	c.search(a, s, segs[:mid])
	a.bind(right)
	c.search(a, s, segs[mid:])
}

// checks emits the argument checks of one syscall: the first alternative
// whose conditions all hold decides, else the default action.
func (c *compiler) checks(a *asm, s *section, alts []alt) {
	for _, al := range alts {
		fail := a.newLabel()
		for _, cd := range al.conds {
			c.cond(a, s.arch, cd, fail)
		}
		a.ret(al.action)
		a.bind(fail)
	}
	a.ret(c.defAction)
}

// argOffsets returns where the low and high halves of argument i are.
func (c *compiler) argOffsets(i uint) (lo, hi uint32) {
	base := uint32(offArgs + 8*i)
	if c.h.little {
		return base, base + 4
	}
	return base + 4, base
}

// cond emits code that falls through when the condition holds and jumps to
// fail when it does not.
func (c *compiler) cond(a *asm, ar *arch, cd cond, fail label) {
	loOff, hiOff := c.argOffsets(cd.arg)
	v, m := cd.value, uint64(0)
	if cd.op == specs.OpMaskedEqual {
		m, v = cd.value, cd.two&cd.value
	}
	vlo, vhi := uint32(v), uint32(v>>32)
	mlo, mhi := uint32(m), uint32(m>>32)

	if !ar.bits64 {
		// 32-bit ABI: the low half only, values truncated (as libseccomp).
		a.ld(loOff)
		switch cd.op {
		case specs.OpEqualTo:
			a.jmp(unix.BPF_JEQ, vlo, 0, fail)
		case specs.OpNotEqual:
			a.jmp(unix.BPF_JEQ, vlo, fail, 0)
		case specs.OpGreaterThan:
			a.jmp(unix.BPF_JGT, vlo, 0, fail)
		case specs.OpGreaterEqual:
			a.jmp(unix.BPF_JGE, vlo, 0, fail)
		case specs.OpLessThan:
			a.jmp(unix.BPF_JGE, vlo, fail, 0)
		case specs.OpLessEqual:
			a.jmp(unix.BPF_JGT, vlo, fail, 0)
		case specs.OpMaskedEqual:
			a.and(mlo)
			a.jmp(unix.BPF_JEQ, vlo, 0, fail)
		}
		return
	}

	match := a.newLabel()
	switch cd.op {
	case specs.OpEqualTo:
		a.ld(hiOff)
		a.jmp(unix.BPF_JEQ, vhi, 0, fail)
		a.ld(loOff)
		a.jmp(unix.BPF_JEQ, vlo, match, fail)
	case specs.OpNotEqual:
		a.ld(hiOff)
		a.jmp(unix.BPF_JEQ, vhi, 0, match)
		a.ld(loOff)
		a.jmp(unix.BPF_JEQ, vlo, fail, match)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		// hi > vhi, or hi == vhi and lo > (>=) vlo.
		a.ld(hiOff)
		a.jmp(unix.BPF_JGT, vhi, match, 0)
		a.jmp(unix.BPF_JEQ, vhi, 0, fail)
		a.ld(loOff)
		op := uint16(unix.BPF_JGT)
		if cd.op == specs.OpGreaterEqual {
			op = unix.BPF_JGE
		}
		a.jmp(op, vlo, match, fail)
	case specs.OpLessThan, specs.OpLessEqual:
		// hi < vhi, or hi == vhi and lo < (<=) vlo.
		a.ld(hiOff)
		a.jmp(unix.BPF_JGT, vhi, fail, 0)
		a.jmp(unix.BPF_JEQ, vhi, 0, match)
		a.ld(loOff)
		op := uint16(unix.BPF_JGE) // lo >= vlo fails LT
		if cd.op == specs.OpLessEqual {
			op = unix.BPF_JGT // lo > vlo fails LE
		}
		a.jmp(op, vlo, fail, match)
	case specs.OpMaskedEqual:
		if mhi != 0 || vhi != 0 {
			a.ld(hiOff)
			a.and(mhi)
			a.jmp(unix.BPF_JEQ, vhi, 0, fail)
		}
		a.ld(loOff)
		a.and(mlo)
		a.jmp(unix.BPF_JEQ, vlo, match, fail)
	}
	a.bind(match)
}
