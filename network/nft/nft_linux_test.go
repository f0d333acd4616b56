package nft

import (
	"net/netip"
	"os"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

func ruleset() Ruleset {
	return Ruleset{Table: "berth_unit",
		Bridges: []Bridge{
			{Name: "berth0", Subnet4: netip.MustParsePrefix("172.17.0.0/16")},
			{Name: "berthx-1", Subnet4: netip.MustParsePrefix("172.18.0.0/16"), Subnet6: netip.MustParsePrefix("fd00::/64")},
			{Name: "berthx-2", Subnet4: netip.MustParsePrefix("172.19.0.0/16"), Internal: true},
		},
		Ports: []Port{
			{Proto: "tcp", HostPort: 8080, Dest: netip.MustParseAddr("172.17.0.2"), DestPort: 80},
			{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, Dest: netip.MustParseAddr("172.17.0.3"), DestPort: 53},
			{Proto: "tcp", HostPort: 8080, Dest: netip.MustParseAddr("fd00::2"), DestPort: 80},
		}}
}

func TestDesiredKeysUnique(t *testing.T) {
	seen := map[string]bool{}
	rules := desired(ruleset())
	for _, r := range rules {
		k := r.chain + "/" + r.key
		if seen[k] {
			t.Fatalf("duplicate rule key %q", k)
		}
		seen[k] = true
	}
	// 7 fixed, 3 ports, 3 localhost, 4 hairpin, 3 outbound (internal has
	// none), 3 intra, 2 internal drops, 6 isolation pairs.
	if len(rules) != 7+3+3+4+3+3+2+6 {
		t.Fatalf("%d rules", len(rules))
	}
}

func TestApplyIsIncremental(t *testing.T) {
	testutil.RequireRoot(t, "it applies nftables rulesets")
	rs := ruleset()
	rs.Table = "berth_unit_" + string(rune('a'+os.Getpid()%26))
	t.Cleanup(func() { Delete(rs.Table) })
	if err := Apply(rs); err != nil {
		t.Fatal(err)
	}
	n, err := CountRules(rs.Table)
	if err != nil || n != len(desired(rs)) {
		t.Fatalf("%d rules, %v", n, err)
	}
	// Applying the same ruleset changes nothing; dropping a port deletes
	// exactly its rule.
	if err := Apply(rs); err != nil {
		t.Fatal(err)
	}
	rs.Ports = rs.Ports[1:]
	if err := ApplyPorts(rs); err != nil {
		t.Fatal(err)
	}
	if n2, _ := CountRules(rs.Table); n2 != n-1 {
		t.Fatalf("after removing a port: %d rules, want %d", n2, n-1)
	}
	if err := Delete(rs.Table); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Exists(rs.Table); ok {
		t.Fatal("table still exists")
	}
}
