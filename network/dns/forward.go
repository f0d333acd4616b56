package dns

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// upstreamTimeout bounds one exchange with one upstream.
const upstreamTimeout = 3 * time.Second

// exchange sends query to the upstream at addr over network ("udp" or
// "tcp") and returns its reply. Over UDP, datagrams that are not the reply
// to this query (late replies to an earlier one, forgeries) are ignored.
func exchange(network, addr string, query []byte, h dnsmessage.Header, q dnsmessage.Question) ([]byte, error) {
	deadline := time.Now().Add(upstreamTimeout)
	c, err := net.DialTimeout(network, addr, upstreamTimeout)
	if err != nil {
		return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
	}
	if network == "tcp" {
		if len(query) > 0xffff {
			return nil, fmt.Errorf("dns upstream %s: query of %d bytes is too long", addr, len(query))
		}
		out := make([]byte, 2+len(query))
		binary.BigEndian.PutUint16(out, uint16(len(query)))
		copy(out[2:], query)
		if _, err := c.Write(out); err != nil {
			return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
		}
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
		}
		resp := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
		}
		if err := checkReply(resp, h, q); err != nil {
			return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
		}
		return resp, nil
	}
	if _, err := c.Write(query); err != nil {
		return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
	}
	buf := make([]byte, 0xffff)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("dns upstream %s: %w", addr, err)
		}
		if checkReply(buf[:n], h, q) == nil {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

// hostResolvers reads the nameservers of a resolv.conf file.
func hostResolvers(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

// withPort appends :53 to addresses without a port.
func withPort(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if _, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, s)
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53).String())
		}
	}
	return out
}
