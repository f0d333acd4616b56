package network

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParsePortSpec parses a -p value: [ip:][hostPort[-end]:]containerPort[-end][/proto].
// An IPv6 host address is written in brackets: [::1]:8080:80.
func ParsePortSpec(s string) (PortMapping, error) {
	var pm PortMapping
	bad := func(why string) (PortMapping, error) {
		return PortMapping{}, fmt.Errorf("port spec %q: %s: %w", s, why, ErrInvalid)
	}
	rest := s
	pm.Proto = "tcp"
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		pm.Proto = strings.ToLower(rest[i+1:])
		rest = rest[:i]
		if pm.Proto != "tcp" && pm.Proto != "udp" && pm.Proto != "sctp" {
			return bad("protocol must be tcp, udp or sctp")
		}
	}
	if strings.HasPrefix(rest, "[") {
		j := strings.Index(rest, "]:")
		if j < 0 {
			return bad("unterminated [ipv6 address]")
		}
		pm.HostIP = rest[1:j]
		rest = rest[j+2:]
		if !strings.Contains(rest, ":") {
			return bad("missing container port")
		}
	}
	parts := strings.Split(rest, ":")
	var hostPart, ctrPart string
	switch {
	case len(parts) == 1:
		ctrPart = parts[0]
	case len(parts) == 2:
		hostPart, ctrPart = parts[0], parts[1]
	case len(parts) == 3 && pm.HostIP == "":
		pm.HostIP, hostPart, ctrPart = parts[0], parts[1], parts[2]
	default:
		return bad("too many colons")
	}
	if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
		return bad(fmt.Sprintf("host address %q is not an IP address", pm.HostIP))
	}
	var err error
	if pm.ContainerPort, pm.ContainerPortEnd, err = parseRange(ctrPart); err != nil {
		return bad("container port: " + err.Error())
	}
	if pm.ContainerPort == 0 {
		return bad("container port must not be 0")
	}
	if hostPart != "" {
		if pm.HostPort, pm.HostPortEnd, err = parseRange(hostPart); err != nil {
			return bad("host port: " + err.Error())
		}
	}
	if err := pm.check(); err != nil {
		return PortMapping{}, fmt.Errorf("port spec %q: %w", s, err)
	}
	return pm, nil
}

func parseRange(s string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a port number", lo)
	}
	if !isRange {
		return uint16(a), 0, nil
	}
	b, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a port number", hi)
	}
	if b < a {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return uint16(a), uint16(b), nil
}

// check validates a mapping's ranges.
func (pm PortMapping) check() error {
	if pm.ContainerPort == 0 {
		return fmt.Errorf("container port must not be 0: %w", ErrInvalid)
	}
	switch pm.Proto {
	case "", "tcp", "udp", "sctp":
	default:
		return fmt.Errorf("protocol %q must be tcp, udp or sctp: %w", pm.Proto, ErrInvalid)
	}
	if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
		return fmt.Errorf("host address %q is not an IP address: %w", pm.HostIP, ErrInvalid)
	}
	if pm.ContainerPortEnd != 0 && pm.ContainerPortEnd < pm.ContainerPort ||
		pm.HostPortEnd != 0 && pm.HostPortEnd < pm.HostPort {
		return fmt.Errorf("port range ends before it starts: %w", ErrInvalid)
	}
	cn := rangeLen(pm.ContainerPort, pm.ContainerPortEnd)
	hn := rangeLen(pm.HostPort, pm.HostPortEnd)
	if cn > 1 && pm.HostPort != 0 && hn != cn {
		return fmt.Errorf("host range %d-%d and container range %d-%d differ in size: %w",
			pm.HostPort, pm.HostPortEnd, pm.ContainerPort, pm.ContainerPortEnd, ErrInvalid)
	}
	if pm.HostPort == 0 && pm.HostPortEnd != 0 {
		return fmt.Errorf("host range must not start at 0: %w", ErrInvalid)
	}
	return nil
}

func rangeLen(a, b uint16) int {
	if b == 0 {
		return 1
	}
	return int(b) - int(a) + 1
}

// String renders a resolved mapping as `berth port` does: 80/tcp -> 0.0.0.0:8080.
func (pm PortMapping) String() string {
	ip := pm.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	proto := pm.Proto
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%d/%s -> %s", pm.ContainerPort, proto, net.JoinHostPort(ip, strconv.Itoa(int(pm.HostPort))))
}

// ipOverlap reports whether two host addresses of mappings collide; ""
// and unspecified addresses cover everything of their family.
func ipOverlap(a, b string) bool {
	if a == "" || b == "" || a == b {
		return true
	}
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return true
	}
	if x.Is4() != y.Is4() {
		return false
	}
	return x.IsUnspecified() || y.IsUnspecified()
}
