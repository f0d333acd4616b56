package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestChooseSubnetAvoidsUsed(t *testing.T) {
	used := []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16"), netip.MustParsePrefix("172.18.5.0/24")}
	got, err := ChooseSubnet(DefaultPool(), used)
	if err != nil || got.String() != "172.19.0.0/16" {
		t.Fatalf("got %s, %v; want 172.19.0.0/16", got, err)
	}
	_, err = ChooseSubnet([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("overlapping only candidate: %v", err)
	}
}

func TestNextSkipsGatewayAndUsedAndWraps(t *testing.T) {
	sn := netip.MustParsePrefix("10.9.0.0/29") // .1 gateway, .2-.6 usable, .7 broadcast
	gw := Gateway(sn)
	used := map[netip.Addr]bool{}
	var got []string
	cursor := netip.Addr{}
	for {
		a, err := Next(sn, netip.Prefix{}, gw, cursor, func(a netip.Addr) bool { return used[a] })
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		used[a] = true
		cursor = a
		got = append(got, a.String())
	}
	want := "[10.9.0.2 10.9.0.3 10.9.0.4 10.9.0.5 10.9.0.6]"
	if s := fmtList(got); s != want {
		t.Fatalf("allocated %s, want %s", s, want)
	}
	// After a release the cursor moves on, then wraps to the freed address.
	delete(used, netip.MustParseAddr("10.9.0.3"))
	a, err := Next(sn, netip.Prefix{}, gw, cursor, func(a netip.Addr) bool { return used[a] })
	if err != nil || a.String() != "10.9.0.3" {
		t.Fatalf("after release: %s %v", a, err)
	}
}

func TestNextInRange(t *testing.T) {
	sn := netip.MustParsePrefix("10.9.0.0/16")
	r := netip.MustParsePrefix("10.9.4.0/30")
	a, err := Next(sn, r, Gateway(sn), netip.Addr{}, func(netip.Addr) bool { return false })
	if err != nil || a.String() != "10.9.4.0" {
		t.Fatalf("first of range: %s %v", a, err)
	}
}

func TestNextIPv6(t *testing.T) {
	sn := netip.MustParsePrefix("fd00:1::/64")
	a, err := Next(sn, netip.Prefix{}, Gateway(sn), netip.Addr{}, func(netip.Addr) bool { return false })
	if err != nil || a.String() != "fd00:1::2" {
		t.Fatalf("got %s %v", a, err)
	}
	if p := RandomULA(); !p.Addr().Is6() || p.Bits() != 64 || p.Addr().As16()[0] != 0xfd {
		t.Fatalf("RandomULA %s", p)
	}
}

func TestValid(t *testing.T) {
	sn := netip.MustParsePrefix("10.9.0.0/24")
	gw := Gateway(sn)
	for _, bad := range []string{"10.9.0.0", "10.9.0.255", "10.9.0.1", "10.10.0.5"} {
		if Valid(sn, netip.Prefix{}, gw, netip.MustParseAddr(bad)) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := Valid(sn, netip.Prefix{}, gw, netip.MustParseAddr("10.9.0.9")); err != nil {
		t.Error(err)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
