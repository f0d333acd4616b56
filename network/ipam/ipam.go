// Package ipam does berth's address arithmetic: choosing a subnet that does
// not collide with anything in use, and picking the next free address of a
// subnet. It keeps no state of its own; the caller persists allocations and
// passes them back in. It imports no other berth package and no kernel code.
package ipam

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
)

// ErrExhausted means no address or subnet is free.
var ErrExhausted = errors.New("no free address")

// DefaultPool lists the subnets tried, in order, for networks created
// without --subnet: 172.17-31.0.0/16, 10.200-255.0.0/16, then 192.168.x.0/24.
func DefaultPool() []netip.Prefix {
	var out []netip.Prefix
	for i := 17; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	for i := 200; i <= 255; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
	}
	for i := 0; i <= 255; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 24))
	}
	return out
}

// Overlaps reports whether a and b share any address.
func Overlaps(a, b netip.Prefix) bool {
	return a.Overlaps(b)
}

// ChooseSubnet returns the first candidate overlapping none of inUse.
func ChooseSubnet(candidates, inUse []netip.Prefix) (netip.Prefix, error) {
next:
	for _, c := range candidates {
		for _, u := range inUse {
			if c.Overlaps(u) {
				continue next
			}
		}
		return c, nil
	}
	return netip.Prefix{}, fmt.Errorf("choose subnet: all %d candidate subnets overlap host routes or other networks: %w", len(candidates), ErrExhausted)
}

// RandomULA returns a random fdxx:xxxx:xxxx:xxxx::/64 unique local prefix.
func RandomULA() netip.Prefix {
	var b [16]byte
	_, _ = rand.Read(b[1:8])
	b[0] = 0xfd
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// Gateway returns the first host address of subnet (subnet.1 / prefix::1).
func Gateway(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}

// last returns the last address of p that may be handed out (the
// broadcast address is excluded for IPv4).
func last(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	l, _ := netip.AddrFromSlice(b)
	if a.Is4() {
		l = l.Prev()
	}
	return l
}

// Valid checks that ip may be given to a container of subnet: inside it
// (and inside ipRange when that is set), not the network or broadcast
// address, not the gateway.
func Valid(subnet, ipRange netip.Prefix, gateway, ip netip.Addr) error {
	switch {
	case !subnet.Contains(ip):
		return fmt.Errorf("address %s is not in subnet %s", ip, subnet)
	case ipRange.IsValid() && !ipRange.Contains(ip):
		return fmt.Errorf("address %s is not in ip range %s", ip, ipRange)
	case ip == subnet.Masked().Addr():
		return fmt.Errorf("address %s is the network address of %s", ip, subnet)
	case ip.Is4() && ip == last(subnet).Next():
		return fmt.Errorf("address %s is the broadcast address of %s", ip, subnet)
	case ip == gateway:
		return fmt.Errorf("address %s is the gateway of %s", ip, subnet)
	}
	return nil
}

// Next returns the first free address after cursor (wrapping around) in
// ipRange, or in subnet when ipRange is the zero Prefix. used reports
// addresses already taken; the gateway is always skipped.
func Next(subnet, ipRange netip.Prefix, gateway, cursor netip.Addr, used func(netip.Addr) bool) (netip.Addr, error) {
	r := subnet
	if ipRange.IsValid() {
		r = ipRange
	}
	first := r.Masked().Addr()
	if first == subnet.Masked().Addr() {
		first = first.Next()
	}
	end := last(r)
	if e := last(subnet); end.Compare(e) > 0 {
		end = e
	}
	start := first
	if cursor.IsValid() && r.Contains(cursor) && cursor.Compare(end) < 0 && cursor.Compare(first) >= 0 {
		start = cursor.Next()
	}
	// Scan start..end then first..start; bounded by 1<<20 probes so a
	// huge IPv6 subnet full of holes cannot spin forever.
	a := start
	for probes := 0; probes < 1<<20; probes++ {
		if a != gateway && !used(a) {
			return a, nil
		}
		if a == end {
			a = first
		} else {
			a = a.Next()
		}
		if a == start {
			break
		}
	}
	return netip.Addr{}, fmt.Errorf("allocate address in %s: %w", r, ErrExhausted)
}
