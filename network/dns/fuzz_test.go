package dns

import (
	"bytes"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// FuzzHandle feeds the server's query handling arbitrary queries, and
// arbitrary upstream replies for the queries it forwards. It must not
// panic; it must stay silent only for what is no query (no header, or the
// response bit set); whatever it sends has the query's ID and the response
// bit, and is either the upstream's reply unchanged or a message it built
// that decodes. The seed corpus is in testdata/fuzz/FuzzHandle.
func FuzzHandle(f *testing.F) {
	snap := testSnapshot("127.0.0.9:53")
	f.Fuzz(func(t *testing.T, query, upstreamReply []byte, tcp bool, from byte) {
		r := &resolver{}
		tables := map[string]*table{}
		for _, nw := range snap.Networks {
			tables[nw.ID] = buildTable(nw)
		}
		r.tables.Store(&tables)
		r.upstreams.Store(&[]string{"127.0.0.8:53"})
		r.exchange = func(network, addr string, q []byte, h dnsmessage.Header, qq dnsmessage.Question) ([]byte, error) {
			if !bytes.Equal(q, query) {
				t.Fatalf("forwarded %x, not the query %x", q, query)
			}
			if err := checkReply(upstreamReply, h, qq); err != nil {
				return nil, err
			}
			return upstreamReply, nil
		}
		netID := []string{"n-front", "n-back", "n-secret", "n-gone"}[from%4]
		src := netip.AddrFrom4([4]byte{127, 0, 1 + from%3, []byte{10, 20, 30, 40, 99}[from%5]})
		out := r.answer(netID, src, tcp, query)
		isQuery := len(query) >= 12 && query[2]&0x80 == 0
		if out == nil {
			if isQuery {
				t.Fatalf("no reply to the query %x", query)
			}
			return
		}
		if !isQuery {
			t.Fatalf("reply %x to %x, which is no query", out, query)
		}
		var p dnsmessage.Parser
		h, err := p.Start(out)
		if err != nil || !h.Response || h.ID != uint16(query[0])<<8|uint16(query[1]) {
			t.Fatalf("reply %x to %x: header %+v %v", out, query, h, err)
		}
		if bytes.Equal(out, upstreamReply) {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("reply %x to %x does not decode: %v", out, query, err)
		}
	})
}
