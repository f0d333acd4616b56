package dns

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// This file holds the tests' DNS client and fake upstream servers, written
// on dnsmessage like the server.

func mustName(t testing.TB, s string) dnsmessage.Name {
	t.Helper()
	n, err := dnsmessage.NewName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// cookie is an EDNS0 option the tests expect upstreams to receive as sent.
var cookie = dnsmessage.Option{Code: 10, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}

// newQuery encodes a recursive query; with edns it carries an OPT record
// (payload size 4096, a cookie option).
func newQuery(t testing.TB, name string, qt dnsmessage.Type, edns bool) []byte {
	t.Helper()
	m := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: uint16(rand.Uint32()), RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: mustName(t, name), Type: qt, Class: dnsmessage.ClassINET}},
	}
	if edns {
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(4096, dnsmessage.RCodeSuccess, false); err != nil {
			t.Fatal(err)
		}
		m.Additionals = append(m.Additionals, dnsmessage.Resource{Header: rh, Body: &dnsmessage.OPTResource{Options: []dnsmessage.Option{cookie}}})
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ask sends msg to server (ip:port) from the address from ("" for any) and
// returns the reply.
func ask(from, server string, tcp bool, msg []byte) ([]byte, error) {
	return askWithin(from, server, tcp, msg, 2*time.Second)
}

func askWithin(from, server string, tcp bool, msg []byte, timeout time.Duration) ([]byte, error) {
	var local net.Addr
	if from != "" {
		ip := net.ParseIP(from)
		if tcp {
			local = &net.TCPAddr{IP: ip}
		} else {
			local = &net.UDPAddr{IP: ip}
		}
	}
	network := "udp"
	if tcp {
		network = "tcp"
	}
	d := net.Dialer{LocalAddr: local, Timeout: timeout}
	c, err := d.Dial(network, server)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if tcp {
		return roundTripTCP(c, msg)
	}
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	buf := make([]byte, 0xffff)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func roundTripTCP(c net.Conn, msg []byte) ([]byte, error) {
	out := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	if _, err := c.Write(append(out, msg...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(c, resp)
	return resp, err
}

// parseReply decodes a reply and checks it answers query: same ID, the
// response bit, the question echoed as asked (same case).
func parseReply(t testing.TB, query, raw []byte) dnsmessage.Message {
	t.Helper()
	var q, m dnsmessage.Message
	if err := q.Unpack(query); err != nil {
		t.Fatal(err)
	}
	if err := m.Unpack(raw); err != nil {
		t.Fatalf("reply does not decode: %v (%x)", err, raw)
	}
	if m.ID != q.ID || !m.Response {
		t.Fatalf("reply id %d response %v, want id %d response", m.ID, m.Response, q.ID)
	}
	if len(m.Questions) != 1 || m.Questions[0].Name.String() != q.Questions[0].Name.String() ||
		m.Questions[0].Type != q.Questions[0].Type || m.Questions[0].Class != q.Questions[0].Class {
		t.Fatalf("question not echoed: got %+v, asked %+v", m.Questions, q.Questions)
	}
	return m
}

// resolve asks server for name and type and returns the checked reply.
func resolve(t testing.TB, from, server string, tcp bool, name string, qt dnsmessage.Type) dnsmessage.Message {
	t.Helper()
	q := newQuery(t, name, qt, false)
	raw, err := ask(from, server, tcp, q)
	if err != nil {
		t.Fatalf("ask %s for %s %v from %s (tcp %v): %v", server, name, qt, from, tcp, err)
	}
	return parseReply(t, q, raw)
}

// addrs lists the A and AAAA addresses of the answer section.
func addrs(m dnsmessage.Message) []string {
	var out []string
	for _, r := range m.Answers {
		switch b := r.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, netip.AddrFrom4(b.A).String())
		case *dnsmessage.AAAAResource:
			out = append(out, netip.AddrFrom16(b.AAAA).String())
		}
	}
	return out
}

// received is one query a fake upstream got.
type received struct {
	tcp bool
	msg []byte
}

// upstream is a fake DNS server on loopback, UDP and TCP on one port.
type upstream struct {
	addr string
	mu   sync.Mutex
	got  []received
}

// newUpstream starts a fake upstream on ip answering with udp and tcp
// (nil reply: none).
func newUpstream(t *testing.T, ip string, udp, tcp func(q []byte) []byte) *upstream {
	t.Helper()
	var pc net.PacketConn
	var tl net.Listener
	for try := 0; ; try++ {
		var err error
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		tl, err = net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	u := &upstream{addr: pc.LocalAddr().String()}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 0xffff)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msg := append([]byte(nil), buf[:n]...)
			u.record(false, msg)
			if r := udp(msg); r != nil {
				pc.WriteTo(r, from)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				u.record(true, msg)
				if r := tcp(msg); r != nil {
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
				}
			}()
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		tl.Close()
		wg.Wait()
	})
	return u
}

func (u *upstream) record(tcp bool, msg []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.got = append(u.got, received{tcp, msg})
}

func (u *upstream) received() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.got...)
}

// makeReply answers query as edit shapes the reply (ID, question and RD
// copied, RA set).
func makeReply(query []byte, edit func(q dnsmessage.Question, m *dnsmessage.Message)) []byte {
	var in dnsmessage.Message
	if err := in.Unpack(query); err != nil || len(in.Questions) != 1 {
		return nil
	}
	out := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: in.ID, Response: true, RecursionDesired: in.RecursionDesired, RecursionAvailable: true},
		Questions: in.Questions,
	}
	edit(in.Questions[0], &out)
	b, err := out.Pack()
	if err != nil {
		return nil
	}
	return b
}

func aRecord(name dnsmessage.Name, ip string) dnsmessage.Resource {
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5},
		Body:   &dnsmessage.AResource{A: netip.MustParseAddr(ip).As4()},
	}
}

func optRecord(t testing.TB, size int) dnsmessage.Resource {
	var rh dnsmessage.ResourceHeader
	if err := rh.SetEDNS0(size, dnsmessage.RCodeSuccess, false); err != nil {
		t.Fatal(err)
	}
	return dnsmessage.Resource{Header: rh, Body: &dnsmessage.OPTResource{Options: []dnsmessage.Option{cookie}}}
}
