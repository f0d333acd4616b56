// Package netfiles renders the per-container /etc/hosts, /etc/resolv.conf and
// /etc/hostname files the way Docker writes them. It only builds bytes; the
// engine writes and bind-mounts them. It imports no other berth package.
package netfiles

import (
	"bytes"
	"fmt"
	"net"
	"strings"
)

// HostsConfig is the content of a container's /etc/hosts.
type HostsConfig struct {
	Hostname   string
	Domain     string   // --domainname; adds hostname.domain
	IPs        []net.IP // the container's addresses on its networks
	ExtraHosts []string // --add-host "name:ip" (or "name=ip"); several names may share an entry
}

// Hosts renders /etc/hosts.
func Hosts(c HostsConfig) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("ff00::0\tip6-mcastprefix\n")
	b.WriteString("ff02::1\tip6-allnodes\n")
	b.WriteString("ff02::2\tip6-allrouters\n")
	for _, e := range c.ExtraHosts {
		name, ip, err := ParseExtraHost(e)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, name)
	}
	if c.Hostname != "" {
		names := c.Hostname
		if c.Domain != "" {
			names = c.Hostname + "." + c.Domain + " " + c.Hostname
		}
		for _, ip := range c.IPs {
			if ip != nil {
				fmt.Fprintf(&b, "%s\t%s\n", ip, names)
			}
		}
	}
	return b.Bytes(), nil
}

// ParseExtraHost parses an --add-host value, "name:ip" or "name=ip"; IPv6
// addresses may be bracketed.
func ParseExtraHost(s string) (name, ip string, err error) {
	i := strings.IndexAny(s, "=:")
	if i <= 0 {
		return "", "", fmt.Errorf("add-host %q: want name:ip", s)
	}
	name, ip = s[:i], strings.Trim(s[i+1:], "[]")
	if ip == "host-gateway" {
		return "", "", fmt.Errorf("add-host %q: host-gateway must be resolved by the caller", s)
	}
	if net.ParseIP(ip) == nil {
		return "", "", fmt.Errorf("add-host %q: %q is not an IP address", s, ip)
	}
	if strings.ContainsAny(name, " \t\n") {
		return "", "", fmt.Errorf("add-host %q: bad host name", s)
	}
	return name, ip, nil
}

// ResolvConfig is the input of ResolvConf.
type ResolvConfig struct {
	// Host is the host's resolv.conf content.
	Host []byte
	// Embedded is the user network's DNS server address (its gateway);
	// nil for the default bridge and host networking.
	Embedded net.IP
	// HostNetwork keeps the host's loopback resolvers (container shares
	// the host's network namespace).
	HostNetwork bool
	Nameservers []string // --dns
	Search      []string // --dns-search
	Options     []string // --dns-option
}

// Fallback nameservers when the host has only loopback resolvers, as Docker does.
var fallback = []string{"8.8.8.8", "8.8.4.4"}

// ResolvConf renders /etc/resolv.conf: on user networks the only nameserver
// is the embedded server (which forwards to --dns servers); otherwise --dns
// or the host's resolvers minus loopback ones (unreachable from a container).
// --dns-search and --dns-option replace the host's search and options.
func ResolvConf(c ResolvConfig) []byte {
	var hostNS, hostSearch, hostOpts []string
	for _, line := range strings.Split(string(c.Host), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			hostNS = append(hostNS, f[1])
		case "search", "domain":
			hostSearch = f[1:]
		case "options":
			hostOpts = append(hostOpts, f[1:]...)
		}
	}
	var ns []string
	switch {
	case c.Embedded != nil:
		ns = []string{c.Embedded.String()}
	case len(c.Nameservers) > 0:
		ns = c.Nameservers
	case c.HostNetwork:
		ns = hostNS
	default:
		for _, s := range hostNS {
			if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() {
				ns = append(ns, s)
			}
		}
		if len(ns) == 0 {
			ns = fallback
		}
	}
	search, opts := hostSearch, hostOpts
	if len(c.Search) > 0 {
		search = c.Search
		if len(search) == 1 && search[0] == "." {
			search = nil
		}
	}
	if len(c.Options) > 0 {
		opts = c.Options
	}
	var b bytes.Buffer
	for _, s := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	}
	return b.Bytes()
}

// Hostname renders /etc/hostname.
func Hostname(name string) []byte {
	return []byte(name + "\n")
}
