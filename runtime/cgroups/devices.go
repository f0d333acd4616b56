package cgroups

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Device access bits, as the kernel's eBPF device context encodes them
// (BPF_DEVCG_ACC_*).
const (
	accMknod = 1
	accRead  = 2
	accWrite = 4
	accAll   = accMknod | accRead | accWrite
)

// Device types (BPF_DEVCG_DEV_*).
const (
	devBlock = 1
	devChar  = 2
)

// wildcard is a major or minor number that matches every device ("*").
const wildcard = -1

// devRule is one normalized device rule of the spec.
type devRule struct {
	allow bool
	typ   byte // 'a', 'b' or 'c'
	major int64
	minor int64
	acc   uint8
}

// devKey names one exception: the kernel matches exceptions by exact type,
// major and minor.
type devKey struct {
	typ          byte // 'b' or 'c'
	major, minor int64
}

// devState is what the v1 devices controller holds: a default behaviour
// and exceptions to it, each with the access bits it grants (when the
// default denies) or takes away (when it allows).
type devState struct {
	allowAll bool
	keys     []devKey // in the order they were added
	acc      map[devKey]uint8
}

func newDevState(allowAll bool) *devState {
	return &devState{allowAll: allowAll, acc: map[devKey]uint8{}}
}

// normalizeDevices checks the spec's device rules and fills in their
// defaults: type "a", wildcard numbers, access "rwm".
func normalizeDevices(in []specs.LinuxDeviceCgroup) ([]devRule, error) {
	out := make([]devRule, 0, len(in))
	for i, d := range in {
		r := devRule{allow: d.Allow, major: wildcard, minor: wildcard}
		switch d.Type {
		case "", "a":
			r.typ = 'a'
		case "b", "c":
			r.typ = d.Type[0]
		default:
			return nil, fmt.Errorf("linux.resources.devices[%d]: type %q: want a, b or c", i, d.Type)
		}
		for _, n := range []struct {
			p   *int64
			dst *int64
			f   string
		}{{d.Major, &r.major, "major"}, {d.Minor, &r.minor, "minor"}} {
			if n.p == nil || *n.p == wildcard {
				continue
			}
			if *n.p < 0 || *n.p > math.MaxInt32 {
				return nil, fmt.Errorf("linux.resources.devices[%d]: %s %d out of range", i, n.f, *n.p)
			}
			*n.dst = *n.p
		}
		acc, err := parseAccess(d.Access)
		if err != nil {
			return nil, fmt.Errorf("linux.resources.devices[%d]: %w", i, err)
		}
		r.acc = acc
		out = append(out, r)
	}
	return out, nil
}

func parseAccess(s string) (uint8, error) {
	if s == "" {
		return accAll, nil
	}
	var acc uint8
	for _, c := range s {
		switch c {
		case 'r':
			acc |= accRead
		case 'w':
			acc |= accWrite
		case 'm':
			acc |= accMknod
		default:
			return 0, fmt.Errorf("access %q: want letters of rwm", s)
		}
	}
	return acc, nil
}

func accessString(acc uint8) string {
	var b strings.Builder
	if acc&accRead != 0 {
		b.WriteByte('r')
	}
	if acc&accWrite != 0 {
		b.WriteByte('w')
	}
	if acc&accMknod != 0 {
		b.WriteByte('m')
	}
	return b.String()
}

// isReset reports a rule that sets the default behaviour: every type,
// every device, every access ("a *:* rwm"). The kernel treats any rule of
// type "a" as such a reset, so other "a" rules are split into "b" and "c".
func (r devRule) isReset() bool {
	return r.typ == 'a' && r.major == wildcard && r.minor == wildcard && r.acc == accAll
}

func (r devRule) types() []byte {
	if r.typ == 'a' {
		return []byte{'b', 'c'}
	}
	return []byte{r.typ}
}

// apply does what the v1 kernel does when the rule is written to
// devices.allow or devices.deny.
func (s *devState) apply(r devRule) {
	if r.isReset() {
		*s = *newDevState(r.allow)
		return
	}
	for _, t := range r.types() {
		k := devKey{t, r.major, r.minor}
		if r.allow == s.allowAll {
			// Same sense as the default: the exception loses these bits.
			if cur, ok := s.acc[k]; ok {
				s.set(k, cur&^r.acc)
			}
			continue
		}
		s.set(k, s.acc[k]|r.acc)
	}
}

func (s *devState) set(k devKey, acc uint8) {
	_, had := s.acc[k]
	if acc == 0 {
		if had {
			delete(s.acc, k)
			for i, kk := range s.keys {
				if kk == k {
					s.keys = append(s.keys[:i], s.keys[i+1:]...)
					break
				}
			}
		}
		return
	}
	if !had {
		s.keys = append(s.keys, k)
	}
	s.acc[k] = acc
}

// emulateDevices applies rules in order to the state start.
func emulateDevices(start *devState, rules []devRule) *devState {
	s := start.clone()
	for _, r := range rules {
		s.apply(r)
	}
	return s
}

func (s *devState) clone() *devState {
	c := newDevState(s.allowAll)
	c.keys = append(c.keys, s.keys...)
	for k, v := range s.acc {
		c.acc[k] = v
	}
	return c
}

func numString(n int64) string {
	if n == wildcard {
		return "*"
	}
	return strconv.FormatInt(n, 10)
}

// v1Line renders an exception as devices.allow and devices.deny take it.
func v1Line(k devKey, acc uint8) string {
	return fmt.Sprintf("%c %s:%s %s", k.typ, numString(k.major), numString(k.minor), accessString(acc))
}

// parseDevicesList reads v1 devices.list: "a *:* rwm" for a group that
// allows everything, else the exceptions to deny-all.
func parseDevicesList(data string) (*devState, error) {
	s := newDevState(false)
	for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || len(f[0]) != 1 {
			return nil, fmt.Errorf("devices.list line %q", line)
		}
		nums := strings.SplitN(f[1], ":", 2)
		if len(nums) != 2 {
			return nil, fmt.Errorf("devices.list line %q", line)
		}
		var n [2]int64
		for i, v := range nums {
			if v == "*" {
				n[i] = wildcard
				continue
			}
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("devices.list line %q", line)
			}
			n[i] = x
		}
		acc, err := parseAccess(f[2])
		if err != nil {
			return nil, fmt.Errorf("devices.list line %q: %w", line, err)
		}
		if f[0] == "a" {
			return newDevState(true), nil
		}
		s.set(devKey{f[0][0], n[0], n[1]}, acc)
	}
	return s, nil
}

// v1Write is one write to devices.allow or devices.deny.
type v1Write struct {
	file string // "devices.allow" or "devices.deny"
	line string
}

// v1DeviceWrites returns the writes that take a v1 group from cur to want,
// without passing through deny-all when both deny by default (a running
// container keeps its devices while its rules change).
func v1DeviceWrites(cur, want *devState) []v1Write {
	var w []v1Write
	// Exceptions to deny-all are added through devices.allow and taken
	// away through devices.deny; exceptions to allow-all the other way
	// round. Writing "a" to the second file resets the default.
	add, remove := "devices.allow", "devices.deny"
	if want.allowAll {
		add, remove = remove, add
	}
	if cur.allowAll != want.allowAll || want.allowAll {
		// A different default, or allow-all (whose exceptions
		// devices.list does not show): reset, then add every exception.
		w = append(w, v1Write{remove, "a"})
		for _, k := range want.keys {
			w = append(w, v1Write{add, v1Line(k, want.acc[k])})
		}
		return w
	}
	for _, k := range cur.keys {
		if extra := cur.acc[k] &^ want.acc[k]; extra != 0 {
			w = append(w, v1Write{remove, v1Line(k, extra)})
		}
	}
	for _, k := range want.keys {
		if missing := want.acc[k] &^ cur.acc[k]; missing != 0 {
			w = append(w, v1Write{add, v1Line(k, missing)})
		}
	}
	return w
}

// DefaultDeviceRules are the devices every container may use whatever its
// spec says, as runc allows them: mknod of any node, and /dev/null, zero,
// full, random, urandom, tty, ptmx and the pty slaves.
func DefaultDeviceRules() []specs.LinuxDeviceCgroup {
	n := func(v int64) *int64 { return &v }
	return []specs.LinuxDeviceCgroup{
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
		{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "rwm"},    // null
		{Allow: true, Type: "c", Major: n(1), Minor: n(8), Access: "rwm"},    // random
		{Allow: true, Type: "c", Major: n(1), Minor: n(7), Access: "rwm"},    // full
		{Allow: true, Type: "c", Major: n(5), Minor: n(0), Access: "rwm"},    // tty
		{Allow: true, Type: "c", Major: n(1), Minor: n(5), Access: "rwm"},    // zero
		{Allow: true, Type: "c", Major: n(1), Minor: n(9), Access: "rwm"},    // urandom
		{Allow: true, Type: "c", Major: n(5), Minor: n(2), Access: "rwm"},    // ptmx
		{Allow: true, Type: "c", Major: n(136), Minor: n(-1), Access: "rwm"}, // pts/*
	}
}
