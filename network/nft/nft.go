package nft

import "net/netip"

// Bridge is one berth bridge as the ruleset sees it.
type Bridge struct {
	Name     string       // link name, e.g. berth0
	Subnet4  netip.Prefix // zero if none
	Subnet6  netip.Prefix // zero if none
	Internal bool         // no traffic in or out of the bridge except between its ports
}

// Port is one published port: traffic for HostIP:HostPort (any local
// address when HostIP is the zero Addr) is sent to Dest:DestPort.
type Port struct {
	Proto    string // "tcp", "udp" or "sctp"
	HostIP   netip.Addr
	HostPort uint16
	Dest     netip.Addr
	DestPort uint16
}

// Ruleset is the whole content of berth's table.
type Ruleset struct {
	Table   string
	Bridges []Bridge
	Ports   []Port
}
