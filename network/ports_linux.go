package network

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// resolvePorts expands ranges, picks host ports for 0 and checks every host
// port against other berth mappings and against host sockets.
func (m *Manager) resolvePorts(st *state, n *netRecord, pms []PortMapping) ([]PortMapping, error) {
	var out []PortMapping
	owner := func(proto, hip string, port uint16) string {
		for _, e := range st.endpoints {
			for _, p := range e.Ports {
				if p.Proto == proto && p.HostPort == port && ipOverlap(p.HostIP, hip) {
					nw := "?"
					if o := st.networkByID(e.NetworkID); o != nil {
						nw = o.Name
					}
					return fmt.Sprintf("container %s on network %s", displayName(e), nw)
				}
			}
		}
		for _, p := range out {
			if p.Proto == proto && p.HostPort == port && ipOverlap(p.HostIP, hip) {
				return "another mapping of this container"
			}
		}
		return ""
	}
	pick := func(proto, hip string, lo, hi uint16) (uint16, error) {
		if lo == 0 {
			for try := 0; try < 32; try++ {
				p, err := ephemeralPort(proto, hip)
				if err != nil {
					return 0, err
				}
				if owner(proto, hip, p) == "" {
					return p, nil
				}
			}
			return 0, fmt.Errorf("publish %s/%s: no free host port: %w", hostDisplay(hip), proto, ErrPortAllocated)
		}
		if hi < lo {
			hi = lo
		}
		var last error
		for p := int(lo); p <= int(hi); p++ {
			addr := net.JoinHostPort(hostDisplay(hip), strconv.Itoa(p)) + "/" + proto
			if who := owner(proto, hip, uint16(p)); who != "" {
				last = fmt.Errorf("publish %s: %w (by %s)", addr, ErrPortAllocated, who)
				continue
			}
			if err := bindCheck(proto, hip, uint16(p), n.IPv6); err != nil {
				last = fmt.Errorf("publish %s: %w (a host socket holds it: %v)", addr, ErrPortAllocated, err)
				continue
			}
			return uint16(p), nil
		}
		return 0, last
	}
	for _, pm := range pms {
		proto := pm.Proto
		if proto == "" {
			proto = "tcp"
		}
		hip := pm.HostIP
		if hip != "" {
			a, _ := netip.ParseAddr(hip)
			if a.Unmap().Is4() && !n.Subnet4.IsValid() || a.Is6() && !a.Is4In6() && !n.Subnet6.IsValid() {
				return nil, fmt.Errorf("publish on %s: network %q has no address of that family: %w", hip, n.Name, ErrInvalid)
			}
			hip = a.Unmap().String()
		}
		cn := rangeLen(pm.ContainerPort, pm.ContainerPortEnd)
		if cn > 1 {
			for i := 0; i < cn; i++ {
				var hp uint16
				if pm.HostPort != 0 {
					hp = pm.HostPort + uint16(i)
				}
				p, err := pick(proto, hip, hp, hp)
				if err != nil {
					return nil, err
				}
				out = append(out, PortMapping{HostIP: hip, HostPort: p, ContainerPort: pm.ContainerPort + uint16(i), Proto: proto})
			}
			continue
		}
		p, err := pick(proto, hip, pm.HostPort, pm.HostPortEnd)
		if err != nil {
			return nil, err
		}
		out = append(out, PortMapping{HostIP: hip, HostPort: p, ContainerPort: pm.ContainerPort, Proto: proto})
	}
	return out, nil
}

func hostDisplay(hip string) string {
	if hip == "" {
		return "0.0.0.0"
	}
	return hip
}

// bindCheck binds the port (and closes it at once) to learn whether a host
// socket uses it.
func bindCheck(proto, hip string, port uint16, v6 bool) error {
	if proto == "sctp" {
		return nil
	}
	addrs := []string{hip}
	if hip == "" {
		addrs = []string{"0.0.0.0"}
		if v6 {
			addrs = append(addrs, "::")
		}
	}
	for _, a := range addrs {
		fam := "4"
		if ip, _ := netip.ParseAddr(a); ip.Is6() {
			fam = "6"
		}
		addr := net.JoinHostPort(a, strconv.Itoa(int(port)))
		if proto == "udp" {
			c, err := net.ListenPacket("udp"+fam, addr)
			if err != nil {
				return err
			}
			c.Close()
			continue
		}
		l, err := net.Listen("tcp"+fam, addr)
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}

// ephemeralPort asks the kernel for a free port.
func ephemeralPort(proto, hip string) (uint16, error) {
	a := hip
	if a == "" {
		a = "0.0.0.0"
	}
	fam := "4"
	if ip, _ := netip.ParseAddr(a); ip.Is6() {
		fam = "6"
	}
	addr := net.JoinHostPort(a, "0")
	if proto == "udp" {
		c, err := net.ListenPacket("udp"+fam, addr)
		if err != nil {
			return 0, fmt.Errorf("pick a host port: %w", err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	l, err := net.Listen("tcp"+fam, addr)
	if err != nil {
		return 0, fmt.Errorf("pick a host port: %w", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}
