package dns

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// The tests run in their own network namespace (see TestMain): networks
// are given loopback gateways, and clients bind the container addresses of
// the records they play.
const (
	frontGW   = "127.0.1.1"
	backGW    = "127.0.2.1"
	secretGW  = "127.0.3.1"
	alphaIP   = "127.0.1.10" // on front; also on back as alphaBack
	alphaBack = "127.0.2.10"
	bravoIP   = "127.0.1.20" // on front only, with its own --dns
	charlieIP = "127.0.2.30" // on back only
	deltaIP   = "127.0.3.40" // on the internal network
	shortID   = "0123456789ab"
)

func dnsAt(ip string) string { return net.JoinHostPort(ip, "53") }

// testSnapshot: networks front (IPv4 and ::1 gateways), back, and secret
// (internal). bravoDNS are bravo's own upstreams.
func testSnapshot(bravoDNS ...string) *Snapshot {
	return &Snapshot{Networks: []Network{
		{ID: "n-front", Name: "front", Gateway4: frontGW, Gateway6: "::1", Records: []Record{
			{Names: []string{"alpha", "al", shortID}, IP4: alphaIP, IP6: "fd00::10"},
			{Names: []string{"bravo", "Web"}, IP4: bravoIP, Upstreams: bravoDNS},
		}},
		{ID: "n-back", Name: "back", Gateway4: backGW, Records: []Record{
			{Names: []string{"alpha"}, IP4: alphaBack},
			{Names: []string{"charlie"}, IP4: charlieIP},
		}},
		{ID: "n-secret", Name: "secret", Gateway4: secretGW, Internal: true, Records: []Record{
			{Names: []string{"delta"}, IP4: deltaIP},
		}},
	}}
}

func testConfig(t *testing.T, upstreams ...string) Config {
	dir := t.TempDir()
	return Config{
		Snapshot:   filepath.Join(dir, "dns.json"),
		Socket:     filepath.Join(dir, "dns.sock"),
		Lock:       filepath.Join(dir, "dns.lock"),
		Upstreams:  upstreams,
		ResolvConf: filepath.Join(dir, "resolv.conf"), // none: no host resolvers
		IdleExit:   time.Hour,
	}
}

// startServer writes snap and runs Serve until the test ends; wait waits
// (5s at most) until Serve returned and returns what it did.
func startServer(t *testing.T, cfg Config, snap *Snapshot) (wait func() error) {
	t.Helper()
	if err := WriteSnapshot(cfg.Snapshot, snap); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var served error
	go func() {
		defer close(done)
		served = Serve(ctx, cfg)
	}()
	wait = func() error {
		select {
		case <-done:
			return served
		case <-time.After(5 * time.Second):
			return errors.New("Serve did not return")
		}
	}
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for Notify(cfg.Socket, time.Second) != nil {
		select {
		case <-done:
			t.Fatalf("Serve returned before answering: %v", served)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return wait
}

// nxdomain is a fake upstream's answer to any query: NXDOMAIN with an SOA.
func nxdomain(q []byte) []byte {
	return makeReply(q, func(qq dnsmessage.Question, m *dnsmessage.Message) {
		m.RCode = dnsmessage.RCodeNameError
		m.Authorities = append(m.Authorities, dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("test."), Type: dnsmessage.TypeSOA, Class: dnsmessage.ClassINET, TTL: 60},
			Body: &dnsmessage.SOAResource{NS: dnsmessage.MustNewName("ns.test."), MBox: dnsmessage.MustNewName("root.test."),
				Serial: 1, Refresh: 2, Retry: 3, Expire: 4, MinTTL: 5},
		})
	})
}

func TestLocalNames(t *testing.T) {
	up := newUpstream(t, "127.0.0.1", nxdomain, nxdomain)
	startServer(t, testConfig(t, up.addr), testSnapshot())

	for _, tcp := range []bool{false, true} {
		for _, c := range []struct {
			name string
			qt   dnsmessage.Type
			want []string
		}{
			{"alpha.", dnsmessage.TypeA, []string{alphaIP}},
			{"AL.", dnsmessage.TypeA, []string{alphaIP}},
			{shortID + ".", dnsmessage.TypeA, []string{alphaIP}},
			{"alpha.front.", dnsmessage.TypeA, []string{alphaIP}},
			{"web.FRONT.", dnsmessage.TypeA, []string{bravoIP}},
			{"Bravo.", dnsmessage.TypeA, []string{bravoIP}},
			{"alpha.", dnsmessage.TypeAAAA, []string{"fd00::10"}},
			{"alpha.", dnsmessage.TypeALL, []string{alphaIP, "fd00::10"}},
			{"bravo.", dnsmessage.TypeAAAA, nil}, // the name exists: NOERROR, no data
			{"bravo.", dnsmessage.TypeMX, nil},
		} {
			m := resolve(t, alphaIP, dnsAt(frontGW), tcp, c.name, c.qt)
			if m.RCode != dnsmessage.RCodeSuccess || !m.Authoritative || !m.RecursionAvailable || !m.RecursionDesired || !slices.Equal(addrs(m), c.want) {
				t.Errorf("%s %v (tcp %v): rcode %v aa %v ra %v rd %v answers %v, want NOERROR aa ra rd %v",
					c.name, c.qt, tcp, m.RCode, m.Authoritative, m.RecursionAvailable, m.RecursionDesired, addrs(m), c.want)
			}
			for _, a := range m.Answers {
				if a.Header.TTL != recordTTL || a.Header.Name.String() != c.name || a.Header.Class != dnsmessage.ClassINET {
					t.Errorf("%s: answer header %+v", c.name, a.Header)
				}
			}
		}
		for ptr, want := range map[string]string{
			"10.1.0.127.in-addr.arpa.":                                  "alpha.",
			"20.1.0.127.IN-ADDR.ARPA.":                                  "bravo.",
			"0.1.0.0." + strings.Repeat("0.", 24) + "0.0.d.f.ip6.arpa.": "alpha.",
		} {
			m := resolve(t, alphaIP, dnsAt(frontGW), tcp, ptr, dnsmessage.TypePTR)
			if m.RCode != dnsmessage.RCodeSuccess || len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.PTRResource).PTR.String() != want {
				t.Errorf("PTR %s (tcp %v): %v %+v, want %s", ptr, tcp, m.RCode, m.Answers, want)
			}
		}
	}
	// The IPv6 gateway answers too.
	if m := resolve(t, "::1", dnsAt("::1"), false, "alpha.", dnsmessage.TypeA); !slices.Equal(addrs(m), []string{alphaIP}) {
		t.Errorf("over IPv6: %v", addrs(m))
	}
	// Names of other networks are not answered locally: the upstream says
	// they do not exist.
	if m := resolve(t, bravoIP, dnsAt(frontGW), false, "delta.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError || len(m.Answers) != 0 {
		t.Errorf("delta from front: %v %v", m.RCode, addrs(m))
	}
	for _, r := range up.received() {
		var m dnsmessage.Message
		if m.Unpack(r.msg) == nil && m.Questions[0].Name.String() != "delta." {
			t.Errorf("a local name was forwarded: %v", m.Questions[0].Name)
		}
	}
}

func TestSeveralQueriesOnOneTCPConnection(t *testing.T) {
	startServer(t, testConfig(t), testSnapshot())
	c, err := net.Dial("tcp", dnsAt(frontGW))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, name := range []string{"alpha.", "bravo.", "web."} {
		q := newQuery(t, name, dnsmessage.TypeA, false)
		raw, err := roundTripTCP(c, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m := parseReply(t, q, raw); len(m.Answers) != 1 {
			t.Fatalf("%s: %v", name, addrs(m))
		}
	}
}

func TestNamesOfAllTheContainersNetworks(t *testing.T) {
	up := newUpstream(t, "127.0.0.1", nxdomain, nxdomain)
	startServer(t, testConfig(t, up.addr), testSnapshot())
	// alpha is on front and back: asking front's gateway, it resolves the
	// names of back.
	for _, name := range []string{"charlie.", "charlie.back."} {
		if m := resolve(t, alphaIP, dnsAt(frontGW), false, name, dnsmessage.TypeA); !slices.Equal(addrs(m), []string{charlieIP}) || m.RCode != dnsmessage.RCodeSuccess {
			t.Errorf("%s from alpha: %v %v", name, m.RCode, addrs(m))
		}
	}
	// On back, alpha has back's address.
	if m := resolve(t, charlieIP, dnsAt(backGW), false, "alpha.", dnsmessage.TypeA); !slices.Equal(addrs(m), []string{alphaBack}) {
		t.Errorf("alpha from charlie: %v", addrs(m))
	}
	// bravo is on front only: charlie does not exist for it.
	if m := resolve(t, bravoIP, dnsAt(frontGW), false, "charlie.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError || len(m.Answers) != 0 {
		t.Errorf("charlie from bravo: %v %v", m.RCode, addrs(m))
	}
	// Nor for a client that is no container.
	if m := resolve(t, "127.0.1.99", dnsAt(frontGW), false, "charlie.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeNameError {
		t.Errorf("charlie from a stranger: %v %v", m.RCode, addrs(m))
	}
}

func TestForwarding(t *testing.T) {
	answer := func(q []byte) []byte {
		return makeReply(q, func(qq dnsmessage.Question, m *dnsmessage.Message) {
			if qq.Name.String() != "outside.berth.test." {
				var nx dnsmessage.Message
				_ = nx.Unpack(nxdomain(q))
				*m = nx
				return
			}
			m.Answers = append(m.Answers, aRecord(qq.Name, "198.51.100.7"))
			m.Additionals = append(m.Additionals, optRecord(t, 1232))
		})
	}
	host := newUpstream(t, "127.0.0.1", answer, answer)
	own := newUpstream(t, "127.0.0.2", nxdomain, nxdomain)
	startServer(t, testConfig(t, host.addr), testSnapshot(own.addr))

	for i, tcp := range []bool{false, true} {
		q := newQuery(t, "outside.berth.test.", dnsmessage.TypeA, true)
		raw, err := ask(alphaIP, dnsAt(frontGW), tcp, q)
		if err != nil {
			t.Fatal(err)
		}
		m := parseReply(t, q, raw)
		if !slices.Equal(addrs(m), []string{"198.51.100.7"}) || m.Authoritative {
			t.Fatalf("forwarded (tcp %v): %v %v", tcp, m.RCode, addrs(m))
		}
		// The upstream got the query as the client sent it, EDNS0 OPT
		// record included, over the client's transport; the client got
		// the upstream's reply as it was sent.
		got := host.received()
		if len(got) != i+1 || got[i].tcp != tcp || !bytes.Equal(got[i].msg, q) {
			t.Fatalf("upstream got %+v, want the query %x (tcp %v)", got, q, tcp)
		}
		if want := answer(q); !bytes.Equal(raw, want) {
			t.Fatalf("reply rewritten:\n got %x\nwant %x", raw, want)
		}
		if m.Additionals[0].Header.Type != dnsmessage.TypeOPT {
			t.Fatalf("no OPT record in the reply: %+v", m.Additionals)
		}
	}

	// NXDOMAIN passes through, with the upstream's authority section.
	q := newQuery(t, "missing.berth.test.", dnsmessage.TypeA, false)
	raw, err := ask(alphaIP, dnsAt(frontGW), false, q)
	if err != nil {
		t.Fatal(err)
	}
	if m := parseReply(t, q, raw); m.RCode != dnsmessage.RCodeNameError || len(m.Authorities) != 1 || !bytes.Equal(raw, answer(q)) {
		t.Fatalf("NXDOMAIN: %v %+v", m.RCode, m.Authorities)
	}

	// bravo's queries go to its own --dns servers only.
	before := len(host.received())
	m := resolve(t, bravoIP, dnsAt(frontGW), false, "outside.berth.test.", dnsmessage.TypeA)
	if m.RCode != dnsmessage.RCodeNameError || len(own.received()) != 1 || len(host.received()) != before {
		t.Fatalf("bravo's query: %v, own upstream got %d, host's %d more", m.RCode, len(own.received()), len(host.received())-before)
	}
}

func TestTruncatedUDPReplyRetriedOverTCP(t *testing.T) {
	// Over UDP the upstream truncates everything; over TCP it answers
	// "big." with 60 addresses (more than 512 bytes) and "small." with one.
	full := func(q []byte) []byte {
		return makeReply(q, func(qq dnsmessage.Question, m *dnsmessage.Message) {
			n := 1
			if qq.Name.String() == "big.berth.test." {
				n = 60
			}
			for i := range n {
				m.Answers = append(m.Answers, aRecord(qq.Name, "198.51.100."+string(rune('0'+i%10))))
			}
		})
	}
	tc := func(q []byte) []byte {
		return makeReply(q, func(qq dnsmessage.Question, m *dnsmessage.Message) { m.Truncated = true })
	}
	up := newUpstream(t, "127.0.0.1", tc, full)
	startServer(t, testConfig(t, up.addr), testSnapshot())

	check := func(name string, edns bool, wantTC bool, wantN int) {
		t.Helper()
		q := newQuery(t, name, dnsmessage.TypeA, edns)
		raw, err := ask(alphaIP, dnsAt(frontGW), false, q)
		if err != nil {
			t.Fatal(err)
		}
		m := parseReply(t, q, raw)
		if m.Truncated != wantTC || len(m.Answers) != wantN {
			t.Fatalf("%s (edns %v): tc %v, %d answers; want tc %v, %d", name, edns, m.Truncated, len(m.Answers), wantTC, wantN)
		}
	}
	check("small.berth.test.", false, false, 1)
	check("big.berth.test.", true, false, 60)
	// Too big for a client without EDNS0: it gets the truncated reply and
	// retries over TCP itself.
	check("big.berth.test.", false, true, 0)
	var udp, tcp int
	for _, r := range up.received() {
		if r.tcp {
			tcp++
		} else {
			udp++
		}
	}
	if udp != 3 || tcp != 3 {
		t.Fatalf("upstream got %d UDP and %d TCP queries, want 3 and 3", udp, tcp)
	}
}

func TestInternalNetworkDoesNotForward(t *testing.T) {
	up := newUpstream(t, "127.0.0.1", nxdomain, nxdomain)
	startServer(t, testConfig(t, up.addr), testSnapshot())
	if m := resolve(t, deltaIP, dnsAt(secretGW), false, "delta.", dnsmessage.TypeA); !slices.Equal(addrs(m), []string{deltaIP}) {
		t.Fatalf("delta on its internal network: %v %v", m.RCode, addrs(m))
	}
	for _, tcp := range []bool{false, true} {
		if m := resolve(t, deltaIP, dnsAt(secretGW), tcp, "outside.berth.test.", dnsmessage.TypeA); m.RCode != dnsmessage.RCodeServerFailure {
			t.Fatalf("outside name on an internal network (tcp %v): %v", tcp, m.RCode)
		}
	}
	if got := up.received(); len(got) != 0 {
		t.Fatalf("an internal network's query was forwarded: %d", len(got))
	}
}

func TestUpstreamFailure(t *testing.T) {
	// Nothing listens on the upstream's port: each exchange fails at once.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.LocalAddr().String()
	l.Close()
	startServer(t, testConfig(t, dead), testSnapshot())
	for _, tcp := range []bool{false, true} {
		m := resolve(t, alphaIP, dnsAt(frontGW), tcp, "outside.berth.test.", dnsmessage.TypeA)
		if m.RCode != dnsmessage.RCodeServerFailure || m.Authoritative || len(m.Answers) != 0 {
			t.Fatalf("upstream down (tcp %v): %v", tcp, m.RCode)
		}
	}
}

func TestUpstreamReplyToAnotherQueryIgnored(t *testing.T) {
	// The upstream first sends replies that are not to this query (another
	// ID, another question, a cut header), then the real one.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	other := newQuery(t, "other.berth.test.", dnsmessage.TypeA, false)
	go func() {
		buf := make([]byte, 0xffff)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		wrongID := nxdomain(q)
		wrongID[0] ^= 0xff
		otherQ := nxdomain(other)
		copy(otherQ[:2], q[:2])
		for _, r := range [][]byte{wrongID, otherQ, {q[0], q[1], 0x80}, nxdomain(q)} {
			pc.WriteTo(r, from)
		}
	}()
	r := &resolver{exchange: exchange}
	tables := map[string]*table{"n": buildTable(Network{ID: "n", Name: "n"})}
	r.tables.Store(&tables)
	r.upstreams.Store(&[]string{pc.LocalAddr().String()})
	q := newQuery(t, "missing.berth.test.", dnsmessage.TypeA, false)
	m := parseReply(t, q, r.answer("n", netip.MustParseAddr(alphaIP), false, q))
	if m.RCode != dnsmessage.RCodeNameError || len(m.Authorities) != 1 {
		t.Fatalf("got %v %+v, want the upstream's NXDOMAIN", m.RCode, m.Authorities)
	}
}

func TestBadQueries(t *testing.T) {
	startServer(t, testConfig(t), testSnapshot())
	good := newQuery(t, "alpha.", dnsmessage.TypeA, false)
	withCounts := func(qd, an, ns, ar byte) []byte {
		b := append([]byte(nil), good...)
		b[5], b[7], b[9], b[11] = qd, an, ns, ar
		return b
	}
	update := append([]byte(nil), good...)
	update[2] = update[2]&^0x78 | 5<<3 // opcode UPDATE
	for _, c := range []struct {
		what  string
		msg   []byte
		rcode dnsmessage.RCode
		echo  bool
	}{
		{"no question", withCounts(0, 0, 0, 0), dnsmessage.RCodeFormatError, false},
		{"two questions", withCounts(2, 0, 0, 0), dnsmessage.RCodeFormatError, false},
		{"two answers", withCounts(1, 2, 0, 0), dnsmessage.RCodeFormatError, false},
		{"three additionals", withCounts(1, 0, 0, 3), dnsmessage.RCodeFormatError, false},
		{"an answer that is not there", withCounts(1, 1, 0, 0), dnsmessage.RCodeFormatError, true},
		{"cut question", good[:len(good)-3], dnsmessage.RCodeFormatError, false},
		{"pointer loop", append(append([]byte(nil), good[:12]...), 0xc0, 12, 0, 1, 0, 1), dnsmessage.RCodeFormatError, false},
		{"update", update, dnsmessage.RCodeNotImplemented, false},
	} {
		for _, tcp := range []bool{false, true} {
			raw, err := ask(alphaIP, dnsAt(frontGW), tcp, c.msg)
			if err != nil {
				t.Fatalf("%s (tcp %v): %v", c.what, tcp, err)
			}
			var p dnsmessage.Parser
			h, err := p.Start(raw)
			if err != nil {
				t.Fatalf("%s: %v", c.what, err)
			}
			qs, err := p.AllQuestions()
			if err != nil || h.RCode != c.rcode || !h.Response || h.ID != uint16(c.msg[0])<<8|uint16(c.msg[1]) || (len(qs) == 1) != c.echo {
				t.Fatalf("%s (tcp %v): %+v %v %v, want %v", c.what, tcp, h, qs, err, c.rcode)
			}
		}
	}
	// No reply at all to what is not a query: a response, or no header.
	response := append([]byte(nil), good...)
	response[2] |= 0x80
	for _, msg := range [][]byte{response, good[:11], {}} {
		if raw, err := askWithin(alphaIP, dnsAt(frontGW), false, msg, 300*time.Millisecond); err == nil {
			t.Fatalf("reply to %x: %x", msg, raw)
		}
	}
	// And the server still answers.
	if m := resolve(t, alphaIP, dnsAt(frontGW), false, "alpha.", dnsmessage.TypeA); len(m.Answers) != 1 {
		t.Fatal("no answer after bad queries")
	}
}

func TestRefusedForUnknownNetwork(t *testing.T) {
	r := &resolver{exchange: exchange}
	tables := map[string]*table{"n-front": buildTable(testSnapshot().Networks[0])}
	r.tables.Store(&tables)
	r.upstreams.Store(&[]string{})
	q := newQuery(t, "alpha.", dnsmessage.TypeA, false)
	if m := parseReply(t, q, r.answer("n-gone", netip.MustParseAddr(alphaIP), false, q)); m.RCode != dnsmessage.RCodeRefused || len(m.Answers) != 0 {
		t.Fatalf("unknown network: %v", m.RCode)
	}
	if m := parseReply(t, q, r.answer("n-front", netip.MustParseAddr(alphaIP), false, q)); len(m.Answers) != 1 {
		t.Fatalf("known network: %v", m.RCode)
	}
}

func TestReloadNotifyStopAndIdleExit(t *testing.T) {
	cfg := testConfig(t)
	snap := testSnapshot()
	wait := startServer(t, cfg, snap)

	if err := Serve(context.Background(), cfg); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second server: %v", err)
	}

	// A new record is served once the server is notified; a removed
	// network's gateway stops answering.
	snap.Networks[0].Records = append(snap.Networks[0].Records, Record{Names: []string{"echo"}, IP4: "127.0.1.50"})
	snap.Networks = snap.Networks[:2]
	if err := WriteSnapshot(cfg.Snapshot, snap); err != nil {
		t.Fatal(err)
	}
	if err := Notify(cfg.Socket, time.Second); err != nil {
		t.Fatal(err)
	}
	if m := resolve(t, alphaIP, dnsAt(frontGW), false, "echo.", dnsmessage.TypeA); !slices.Equal(addrs(m), []string{"127.0.1.50"}) {
		t.Fatalf("echo after notify: %v %v", m.RCode, addrs(m))
	}
	if _, err := ask(deltaIP, dnsAt(secretGW), false, newQuery(t, "delta.", dnsmessage.TypeA, false)); err == nil {
		t.Fatal("a removed network's gateway still answers")
	}
	// Its address can be bound again (the sockets are closed), and it is
	// served again when the network comes back, without a notification.
	l, err := net.ListenPacket("udp", dnsAt(secretGW))
	if err != nil {
		t.Fatalf("removed network's port still held: %v", err)
	}
	l.Close()
	snap = testSnapshot()
	if err := WriteSnapshot(cfg.Snapshot, snap); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		raw, err := ask(deltaIP, dnsAt(secretGW), false, newQuery(t, "delta.", dnsmessage.TypeA, false))
		if err == nil && len(raw) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("snapshot change not picked up")
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := Stop(cfg.Socket, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("Serve after Stop: %v", err)
	}
	if err := Notify(cfg.Socket, 200*time.Millisecond); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Notify with no server: %v", err)
	}
	if err := Stop(cfg.Socket, 200*time.Millisecond); err != nil {
		t.Fatalf("Stop with no server: %v", err)
	}
	if _, err := ask(alphaIP, dnsAt(frontGW), false, newQuery(t, "alpha.", dnsmessage.TypeA, false)); err == nil {
		t.Fatal("a stopped server still answers")
	}

	// With no endpoint, a server exits after IdleExit.
	idle := testConfig(t)
	idle.IdleExit = 200 * time.Millisecond
	empty := testSnapshot()
	for i := range empty.Networks {
		empty.Networks[i].Records = nil
	}
	if err := WriteSnapshot(idle.Snapshot, empty); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := Serve(context.Background(), idle); err != nil || time.Since(start) > 3*time.Second {
		t.Fatalf("idle server: %v after %v", err, time.Since(start))
	}
}
