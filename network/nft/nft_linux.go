package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// ipsDstNAT is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
const ipsDstNAT = 1 << 5

// Apply makes berth's table hold exactly the rules rs describes, in one
// atomic transaction. Every rule carries a comment naming it; Apply lists
// the rules in place, adds the missing ones and deletes the unwanted ones.
// In the kernel any deletion waits for an RCU grace period (about 10 ms), so
// adding a container without removing anything costs well under a
// millisecond, and nothing is sent at all when the table is already right.
func Apply(rs Ruleset) error {
	return apply(rs, false)
}

// ApplyPorts is Apply restricted to the published-port rules, for callers
// that know nothing else changed; it still creates a missing table.
func ApplyPorts(rs Ruleset) error {
	return apply(rs, true)
}

func apply(rs Ruleset, portsOnly bool) error {
	if rs.Table == "" {
		return errors.New("nft: empty table name")
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nft: open netlink: %w", err)
	}
	t := &nftables.Table{Name: rs.Table, Family: nftables.TableFamilyINet}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("nft: list chains: %w", err)
	}
	have := map[string]*nftables.Chain{}
	for _, ch := range chains {
		if ch.Table.Name == rs.Table {
			have[ch.Name] = ch
		}
	}
	want := skeleton(t)
	changed := false
	if len(have) == 0 {
		c.AddTable(t)
		changed = true
	}
	for _, ch := range want {
		if have[ch.Name] == nil {
			c.AddChain(ch)
			changed = true
		}
	}
	if len(have) < len(want) {
		portsOnly = false // the table is new or damaged: fill it all
	}
	rules := desired(rs)
	existing := map[string][]*nftables.Rule{}
	for _, ch := range want {
		if have[ch.Name] == nil || portsOnly && ch.Name != "ports" {
			continue
		}
		rs, err := c.GetRules(t, ch)
		if err != nil {
			return fmt.Errorf("nft: list rules of %s: %w", ch.Name, err)
		}
		for _, r := range rs {
			key, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			existing[ch.Name+"\x00"+key] = append(existing[ch.Name+"\x00"+key], r)
		}
	}
	for _, r := range rules {
		if portsOnly && r.chain != "ports" {
			continue
		}
		k := r.chain + "\x00" + r.key
		if old := existing[k]; len(old) > 0 {
			existing[k] = old[1:]
			continue
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: want[r.chain], Exprs: r.exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.key)})
		changed = true
	}
	for _, extra := range existing {
		for _, r := range extra {
			c.DelRule(r)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nft: update table %s: %w", rs.Table, err)
	}
	return nil
}

// Delete removes berth's table if it exists.
func Delete(table string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nft: open netlink: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nft: delete table %s: %w", table, err)
	}
	return nil
}

// Exists reports whether the table exists.
func Exists(table string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nft: open netlink: %w", err)
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nft: list tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == table {
			return true, nil
		}
	}
	return false, nil
}

// CountRules returns the number of rules in the table (0 if it is missing);
// tests use it to check that nothing is left behind.
func CountRules(table string) (int, error) {
	ok, err := Exists(table)
	if err != nil || !ok {
		return 0, err
	}
	c, err := nftables.New()
	if err != nil {
		return 0, fmt.Errorf("nft: open netlink: %w", err)
	}
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return 0, fmt.Errorf("nft: list chains: %w", err)
	}
	n := 0
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return 0, fmt.Errorf("nft: list rules of %s: %w", ch.Name, err)
		}
		n += len(rules)
	}
	return n, nil
}

// rule is one rule of the table, named by key (its comment).
type rule struct {
	chain string
	key   string
	exprs []expr.Any
}

func skeleton(t *nftables.Table) map[string]*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	out := map[string]*nftables.Chain{}
	for _, ch := range []*nftables.Chain{
		base("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		base("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		base("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		base("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter),
		{Name: "ports", Table: t},
		{Name: "fwd-intra", Table: t},
		{Name: "fwd-internal", Table: t},
		{Name: "fwd-isolate", Table: t},
	} {
		out[ch.Name] = ch
	}
	return out
}

// desired lists every rule of rs. Within a chain the rules' order does not
// matter (each regular chain holds rules of a single verdict), so rules
// can be added and deleted one by one.
func desired(rs Ruleset) []rule {
	jump := func(chain string) []expr.Any {
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
	}
	toLocal := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
	established := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
	out := []rule{
		{"prerouting", "to local -> ports", concat(toLocal, jump("ports"))},
		{"output", "to local -> ports", concat(toLocal, jump("ports"))},
		// The forward chain's order is fixed here; the jumped-to chains
		// each hold rules of one verdict.
		{"forward", "1 intra-bridge", jump("fwd-intra")},
		{"forward", "2 internal", jump("fwd-internal")},
		{"forward", "3 established", concat(established, verdict(expr.VerdictAccept))},
		{"forward", "4 published", concat(ctDNAT(expr.CmpOpNeq), verdict(expr.VerdictAccept))},
		{"forward", "5 isolation", jump("fwd-isolate")},
	}
	for _, p := range rs.Ports {
		host := "*"
		if p.HostIP.IsValid() {
			host = p.HostIP.String()
		}
		key := fmt.Sprintf("dnat %s %s port %d -> %s", p.Proto, host, p.HostPort, netip.AddrPortFrom(p.Dest, p.DestPort))
		out = append(out, rule{"ports", key, dnatExprs(p)})
	}
	for _, b := range rs.Bridges {
		if b.Subnet4.IsValid() {
			// Published on 127.0.0.1: give the packet a routable source.
			out = append(out, rule{"postrouting", "localhost " + b.Name,
				concat(oif(b.Name), saddr(netip.MustParsePrefix("127.0.0.0/8")), masq())})
		}
		for _, sn := range []netip.Prefix{b.Subnet4, b.Subnet6} {
			if !sn.IsValid() {
				continue
			}
			// Hairpin: a container reaching a published port of its own bridge
			// through a host address; the reply must come back through the host.
			out = append(out, rule{"postrouting", "hairpin " + b.Name + " " + sn.String(),
				concat(oif(b.Name), saddr(sn), ctDNAT(expr.CmpOpNeq), masq())})
			if !b.Internal {
				out = append(out, rule{"postrouting", "outbound " + b.Name + " " + sn.String(),
					concat(saddr(sn), oifNot(b.Name), masq())})
			}
		}
		out = append(out, rule{"fwd-intra", "intra " + b.Name, concat(iif(b.Name), oif(b.Name), verdict(expr.VerdictAccept))})
		if b.Internal {
			out = append(out, rule{"fwd-internal", "internal in " + b.Name, concat(iif(b.Name), verdict(expr.VerdictDrop))},
				rule{"fwd-internal", "internal out " + b.Name, concat(oif(b.Name), verdict(expr.VerdictDrop))})
		}
		for _, o := range rs.Bridges {
			if o.Name != b.Name {
				out = append(out, rule{"fwd-isolate", "isolate " + b.Name + " " + o.Name,
					concat(iif(b.Name), oif(o.Name), verdict(expr.VerdictDrop))})
			}
		}
	}
	return out
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func iif(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)},
	}
}

func oif(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(name)},
	}
}

func oifNot(name string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(name)},
	}
}

func verdict(k expr.VerdictKind) []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: k}}
}

func masq() []expr.Any { return []expr.Any{&expr.Counter{}, &expr.Masq{}} }

func nfproto(a netip.Addr) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if a.Is6() && !a.Is4In6() {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// addrMatch matches the source (src) or destination address against a prefix.
func addrMatch(p netip.Prefix, src bool) []expr.Any {
	a := p.Addr()
	out := nfproto(a)
	var off, n uint32
	if a.Is4() {
		off, n = 16, 4
		if src {
			off = 12
		}
	} else {
		off, n = 24, 16
		if src {
			off = 8
		}
	}
	out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	if p.Bits() < int(n*8) {
		mask := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	out = append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()})
	return out
}

func saddr(p netip.Prefix) []expr.Any { return addrMatch(p, true) }

func ctDNAT(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: op, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func protoNum(p string) byte {
	switch p {
	case "udp":
		return unix.IPPROTO_UDP
	case "sctp":
		return unix.IPPROTO_SCTP
	default:
		return unix.IPPROTO_TCP
	}
}

func dnatExprs(p Port) []expr.Any {
	var out []expr.Any
	if p.HostIP.IsValid() {
		out = addrMatch(netip.PrefixFrom(p.HostIP, p.HostIP.BitLen()), false)
	} else {
		out = nfproto(p.Dest)
	}
	port := make([]byte, 2)
	binary.BigEndian.PutUint16(port, p.HostPort)
	dport := make([]byte, 2)
	binary.BigEndian.PutUint16(dport, p.DestPort)
	fam := uint32(unix.NFPROTO_IPV4)
	if p.Dest.Is6() && !p.Dest.Is4In6() {
		fam = unix.NFPROTO_IPV6
	}
	out = append(out,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNum(p.Proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		&expr.Immediate{Register: 1, Data: p.Dest.Unmap().AsSlice()},
		&expr.Immediate{Register: 2, Data: dport},
		&expr.Counter{},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
	return out
}
