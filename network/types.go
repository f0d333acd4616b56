package network

import (
	"errors"
	"net"
	"time"
)

// Error categories; test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrInUse         = errors.New("in use")
	ErrPortAllocated = errors.New("port is already allocated")
	ErrInvalid       = errors.New("invalid argument")
)

// Names of the predefined networks.
const (
	DefaultNetwork = "bridge"
	HostNetwork    = "host"
	NoneNetwork    = "none"
)

// Options tune a Manager. The zero value is what berth uses.
type Options struct {
	// DefaultBridge is the link name of the default network; "berth0" if empty.
	DefaultBridge string
	// DefaultSubnet forces the default network's subnet (CIDR); if empty
	// the first subnet of the pool that collides with no host route or
	// address is used, once, when the database is created.
	DefaultSubnet string
	// Pool lists candidate subnets (CIDR) for networks created without
	// --subnet; ipam.DefaultPool() if empty.
	Pool []string
	// Table is berth's nftables table (family inet); "berth" if empty.
	Table string
	// Upstreams, when set, replaces the host's resolv.conf nameservers as
	// the DNS server's forwarders ("ip" or "ip:port").
	Upstreams []string
	// HostResolvConf is the host's resolver file; "/etc/resolv.conf" if empty.
	HostResolvConf string
	// StartDNS starts the DNS server (RunDNS) as a detached process. Attach
	// calls it when an endpoint joins a user network and no server answers
	// on runDir/dns.sock. Nil means the caller manages the server itself.
	StartDNS func() error
	// DNSIdleExit is how long RunDNS waits with no endpoint on a user
	// network before it exits; 2s if zero.
	DNSIdleExit time.Duration
}

// NetworkConfig describes a user-defined bridge network.
type NetworkConfig struct {
	Name      string
	Subnet    string // IPv4 CIDR; chosen from the pool if empty
	Gateway   string // IPv4; first address of Subnet if empty
	IPRange   string // IPv4 CIDR inside Subnet that containers get addresses from
	Internal  bool   // no traffic to or from outside the network
	IPv6      bool   // dual stack
	SubnetV6  string // IPv6 CIDR; a random fd00::/8 /64 if empty and IPv6 is set
	GatewayV6 string
	Labels    map[string]string
	Options   map[string]string // recorded and shown by Inspect
}

// PortMapping publishes ContainerPort[-ContainerPortEnd] of a container on
// HostIP:HostPort[-HostPortEnd]. HostIP "" means every host address (IPv4
// and, on IPv6 networks, IPv6). HostPort 0 picks a free port. A host range
// with a single container port picks the first free port in the range.
type PortMapping struct {
	HostIP           string `json:"HostIp"`
	HostPort         uint16 `json:"HostPort"`
	HostPortEnd      uint16 `json:"HostPortEnd,omitempty"`
	ContainerPort    uint16 `json:"ContainerPort"`
	ContainerPortEnd uint16 `json:"ContainerPortEnd,omitempty"`
	Proto            string `json:"Proto"` // tcp (default), udp, sctp
}

// EndpointOptions are the per-container settings of one attachment.
type EndpointOptions struct {
	Name    string   // container name, resolvable on user networks
	Aliases []string // --network-alias
	IP      net.IP   // --ip; allocated if nil
	IPv6    net.IP   // --ip6; allocated if nil on IPv6 networks
	MAC     net.HardwareAddr
	Ports   []PortMapping
	// DNS are the container's --dns servers; on user networks the DNS
	// server forwards this container's other queries to them.
	DNS []string
}

// Endpoint is a container's attachment to a network, as set up.
type Endpoint struct {
	ID          string
	NetworkID   string
	NetworkName string
	ContainerID string
	Name        string
	Aliases     []string
	SandboxPath string
	IfName      string // inside the sandbox: eth0, eth1, ...
	HostIfName  string // host end of the veth
	MAC         net.HardwareAddr
	IP          net.IP
	PrefixLen   int
	Gateway     net.IP // nil on internal networks (no default route)
	IPv6        net.IP
	PrefixLenV6 int
	GatewayV6   net.IP
	Ports       []PortMapping // resolved: one entry per port, no ranges, no 0
	Bridge      string
}

// IPAMConfig is one subnet of a network, as Docker shows it.
type IPAMConfig struct {
	Subnet  string `json:"Subnet"`
	IPRange string `json:"IPRange,omitempty"`
	Gateway string `json:"Gateway,omitempty"`
}

// IPAM is the address management section of Inspect.
type IPAM struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// EndpointResource is one entry of Inspect's Containers.
type EndpointResource struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// NetworkResource is a network as `network inspect` shows it (Docker's shape).
type NetworkResource struct {
	Name       string                      `json:"Name"`
	ID         string                      `json:"Id"`
	Created    time.Time                   `json:"Created"`
	Scope      string                      `json:"Scope"`
	Driver     string                      `json:"Driver"`
	EnableIPv6 bool                        `json:"EnableIPv6"`
	IPAM       IPAM                        `json:"IPAM"`
	Internal   bool                        `json:"Internal"`
	Attachable bool                        `json:"Attachable"`
	Ingress    bool                        `json:"Ingress"`
	Containers map[string]EndpointResource `json:"Containers"`
	Options    map[string]string           `json:"Options"`
	Labels     map[string]string           `json:"Labels"`
}
