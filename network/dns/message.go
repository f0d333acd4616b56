package dns

import (
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/net/dns/dnsmessage"
)

// recordTTL is the TTL of the records the server answers itself.
const recordTTL = 600

// minUDPSize is the largest UDP reply a client without EDNS0 accepts.
const minUDPSize = 512

// opNotify is the NOTIFY opcode (RFC 1996), accepted like a query.
const opNotify dnsmessage.OpCode = 4

// table is what one network's listeners answer from.
type table struct {
	internal bool
	names    map[string][]*Record // fqdn, lower case
	ptr      map[string]string    // reverse fqdn -> fqdn
	bySrc    map[netip.Addr][]string
	self     map[netip.Addr]string // a record's address -> its first name (the container)
}

// exchangeFunc sends query to the upstream at addr over network ("udp" or
// "tcp") and returns the upstream's reply, which checkReply accepted.
type exchangeFunc func(network, addr string, query []byte, h dnsmessage.Header, q dnsmessage.Question) ([]byte, error)

// resolver answers queries from the tables of the last snapshot loaded.
// It does no I/O but through exchange.
type resolver struct {
	tables    atomic.Pointer[map[string]*table] // network id -> table
	upstreams atomic.Pointer[[]string]          // host-wide forwarders, with ports
	exchange  exchangeFunc
}

func buildTable(nw Network) *table {
	t := &table{internal: nw.Internal, names: map[string][]*Record{}, ptr: map[string]string{}, bySrc: map[netip.Addr][]string{}, self: map[netip.Addr]string{}}
	for i := range nw.Records {
		r := &nw.Records[i]
		if len(r.Names) > 0 {
			for _, ip := range []string{r.IP4, r.IP6} {
				if a, err := netip.ParseAddr(ip); err == nil {
					t.self[a] = strings.ToLower(r.Names[0]) + "."
				}
			}
		}
		for j, n := range r.Names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if n == "" {
				continue
			}
			for _, fq := range []string{n + ".", n + "." + strings.ToLower(nw.Name) + "."} {
				t.names[fq] = append(t.names[fq], r)
			}
			if j == 0 {
				for _, ip := range []string{r.IP4, r.IP6} {
					if rev, ok := reverseName(ip); ok {
						t.ptr[rev] = n + "."
					}
				}
			}
		}
		if len(r.Upstreams) > 0 {
			for _, ip := range []string{r.IP4, r.IP6} {
				if a, err := netip.ParseAddr(ip); err == nil {
					t.bySrc[a] = withPort(r.Upstreams)
				}
			}
		}
	}
	return t
}

// reverseName returns the in-addr.arpa or ip6.arpa name of an address.
func reverseName(ip string) (string, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return "", false
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		var s []byte
		for i := 3; i >= 0; i-- {
			s = strconv.AppendUint(s, uint64(b[i]), 10)
			s = append(s, '.')
		}
		return string(s) + "in-addr.arpa.", true
	}
	const hex = "0123456789abcdef"
	b := a.As16()
	s := make([]byte, 0, 64+len("ip6.arpa."))
	for i := 15; i >= 0; i-- {
		s = append(s, hex[b[i]&0xf], '.', hex[b[i]>>4], '.')
	}
	return string(s) + "ip6.arpa.", true
}

// lowerASCII lower-cases the ASCII letters of a name (DNS names compare
// case-insensitively in ASCII only).
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// answer returns the reply to msg, a query that arrived on network netID
// from src (over TCP if tcp), or nil when nothing must be sent back.
func (r *resolver) answer(netID string, src netip.Addr, tcp bool, msg []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil // not even a header: any reply could serve amplification
	}
	if h.Response {
		return nil
	}
	if h.OpCode != 0 && h.OpCode != opNotify {
		return reject(h, nil, dnsmessage.RCodeNotImplemented)
	}
	qd, an, ns, ar := sectionCounts(msg)
	if qd != 1 || an > 1 || ns > 1 || ar > 2 {
		return reject(h, nil, dnsmessage.RCodeFormatError)
	}
	q, err := p.Question()
	if err != nil {
		return reject(h, nil, dnsmessage.RCodeFormatError)
	}
	limit, err := skipRest(&p)
	if err != nil {
		return reject(h, &q, dnsmessage.RCodeFormatError)
	}

	tables := *r.tables.Load()
	t := tables[netID]
	if t == nil {
		return reply(h, &q, dnsmessage.RCodeRefused)
	}
	name := lowerASCII(q.Name.String())
	recs, ok := t.names[name]
	if !ok {
		// A container connected to several networks resolves the names
		// of all of them, whichever gateway it asks (as Docker's does).
		if me, found := t.self[src]; found {
			for id, t2 := range tables {
				if id == netID {
					continue
				}
				if _, member := t2.names[me]; member {
					if recs, ok = t2.names[name]; ok {
						break
					}
				}
			}
		}
	}
	if ok && q.Class == dnsmessage.ClassINET {
		return authoritative(h, q, func(b *dnsmessage.Builder) error {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: recordTTL}
			for _, rec := range recs {
				if q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeALL {
					if a, err := netip.ParseAddr(rec.IP4); err == nil && a.Unmap().Is4() {
						if err := b.AResource(rh, dnsmessage.AResource{A: a.Unmap().As4()}); err != nil {
							return err
						}
					}
				}
				if q.Type == dnsmessage.TypeAAAA || q.Type == dnsmessage.TypeALL {
					if a, err := netip.ParseAddr(rec.IP6); err == nil {
						if err := b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()}); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
	}
	if target, ok := t.ptr[name]; ok && q.Type == dnsmessage.TypePTR {
		return authoritative(h, q, func(b *dnsmessage.Builder) error {
			n, err := dnsmessage.NewName(target)
			if err != nil {
				return err
			}
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: recordTTL}
			return b.PTRResource(rh, dnsmessage.PTRResource{PTR: n})
		})
	}
	if t.internal {
		return reply(h, &q, dnsmessage.RCodeServerFailure)
	}
	ups := *r.upstreams.Load()
	if own, ok := t.bySrc[src]; ok {
		ups = own
	}
	if resp := r.forward(msg, h, q, ups, tcp, limit); resp != nil {
		return resp
	}
	return reply(h, &q, dnsmessage.RCodeServerFailure)
}

// forward relays the client's query bytes to the first upstream that
// answers and returns the upstream's reply bytes as they are (the reply
// carries the client's ID since the query did). UDP clients are forwarded
// over UDP, and a truncated UDP reply is retried over TCP; the TCP reply is
// used if it fits the client's UDP payload size (limit), else the client
// gets the truncated reply and retries over TCP itself. TCP clients are
// forwarded over TCP. nil: no upstream answered.
func (r *resolver) forward(query []byte, h dnsmessage.Header, q dnsmessage.Question, ups []string, tcp bool, limit int) []byte {
	for _, up := range ups {
		if tcp {
			if resp, err := r.exchange("tcp", up, query, h, q); err == nil {
				return resp
			}
			continue
		}
		resp, err := r.exchange("udp", up, query, h, q)
		if err != nil {
			continue
		}
		if truncated(resp) {
			if full, err := r.exchange("tcp", up, query, h, q); err == nil && len(full) <= limit {
				return full
			}
		}
		return resp
	}
	return nil
}

func truncated(msg []byte) bool { return len(msg) > 2 && msg[2]&0x02 != 0 }

// sectionCounts reads the four section counts of a message at least 12
// bytes long.
func sectionCounts(msg []byte) (qd, an, ns, ar int) {
	u := func(i int) int { return int(msg[i])<<8 | int(msg[i+1]) }
	return u(4), u(6), u(8), u(10)
}

// skipRest checks the sections after the question and returns the UDP
// payload size the client accepts (its EDNS0 OPT record's, at least 512).
func skipRest(p *dnsmessage.Parser) (int, error) {
	limit := minUDPSize
	if err := p.SkipAllQuestions(); err != nil {
		return 0, err
	}
	if err := p.SkipAllAnswers(); err != nil {
		return 0, err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return 0, err
	}
	for {
		rh, err := p.AdditionalHeader()
		if err == dnsmessage.ErrSectionDone {
			return limit, nil
		}
		if err != nil {
			return 0, err
		}
		if rh.Type == dnsmessage.TypeOPT && int(rh.Class) > limit {
			limit = int(rh.Class)
		}
		if err := p.SkipAdditional(); err != nil {
			return 0, err
		}
	}
}

// checkReply accepts resp as the upstream's reply to a query with header h
// and question q: a well-formed response with the query's ID and question
// (or none, as some servers send with errors).
func checkReply(resp []byte, h dnsmessage.Header, q dnsmessage.Question) error {
	var p dnsmessage.Parser
	rh, err := p.Start(resp)
	if err != nil {
		return err
	}
	if !rh.Response || rh.ID != h.ID {
		return errMismatch
	}
	for i := 0; ; i++ {
		rq, err := p.Question()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return err
		}
		if i > 0 || rq.Type != q.Type || rq.Class != q.Class || lowerASCII(rq.Name.String()) != lowerASCII(q.Name.String()) {
			return errMismatch
		}
	}
	if err := p.SkipAllAnswers(); err != nil {
		return err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return err
	}
	return p.SkipAllAdditionals()
}

type replyError string

func (e replyError) Error() string { return string(e) }

const errMismatch = replyError("upstream reply does not match the query")

// replyHeader is the header of a reply to req (as a DNS server sets it:
// same ID and opcode, RD and CD copied for queries).
func replyHeader(req dnsmessage.Header, rcode dnsmessage.RCode) dnsmessage.Header {
	h := dnsmessage.Header{ID: req.ID, Response: true, OpCode: req.OpCode, RCode: rcode}
	if req.OpCode == 0 {
		h.RecursionDesired = req.RecursionDesired
		h.CheckingDisabled = req.CheckingDisabled
	}
	return h
}

// reply is an answerless reply with rcode, echoing q if not nil.
func reply(req dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	return build(replyHeader(req, rcode), q, nil)
}

// reject is the reply to a query the server will not handle: the query's
// header flags with the response bit and rcode set, opcode QUERY (but for
// NOTIMP), echoing q if not nil.
func reject(req dnsmessage.Header, q *dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	h := req
	h.Response = true
	h.Authoritative = false
	h.RCode = rcode
	if rcode != dnsmessage.RCodeNotImplemented {
		h.OpCode = 0
	}
	return build(h, q, nil)
}

// authoritative is a NOERROR reply with the answers add writes, or
// SERVFAIL if they cannot be encoded.
func authoritative(req dnsmessage.Header, q dnsmessage.Question, add func(*dnsmessage.Builder) error) []byte {
	h := replyHeader(req, dnsmessage.RCodeSuccess)
	h.Authoritative = true
	h.RecursionAvailable = true
	if out := build(h, &q, add); out != nil {
		return out
	}
	return reply(req, &q, dnsmessage.RCodeServerFailure)
}

// build encodes a message; nil if it cannot be.
func build(h dnsmessage.Header, q *dnsmessage.Question, add func(*dnsmessage.Builder) error) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, minUDPSize), h)
	b.EnableCompression()
	if q != nil {
		if err := b.StartQuestions(); err != nil {
			return nil
		}
		if err := b.Question(*q); err != nil {
			return nil
		}
	}
	if add != nil {
		if err := b.StartAnswers(); err != nil {
			return nil
		}
		if err := add(&b); err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
