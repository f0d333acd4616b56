package dns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// ErrNotRunning means no server answers on the control socket.
var ErrNotRunning = errors.New("dns server is not running")

// ErrAlreadyRunning means another server holds the lock.
var ErrAlreadyRunning = errors.New("dns server is already running")

// Config locates a server's files.
type Config struct {
	Snapshot   string        // snapshot file written by package network
	Socket     string        // control socket
	Lock       string        // lock file; one server per lock
	Upstreams  []string      // forwarders; host resolv.conf nameservers if empty
	ResolvConf string        // "/etc/resolv.conf" if empty
	IdleExit   time.Duration // exit after this long with no endpoint; 2s if zero
}

// Notify asks a running server to reload its snapshot and waits until it has.
func Notify(socket string, timeout time.Duration) error {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("reload\n")); err != nil {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("dns server: reload: %s", strings.TrimSpace(line))
	}
	return nil
}

// table is what one network's listeners answer from.
type table struct {
	internal bool
	names    map[string][]*Record // fqdn, lower case
	ptr      map[string]string    // reverse fqdn -> fqdn
	bySrc    map[netip.Addr][]string
	self     map[netip.Addr]string // a record's address -> its first name (the container)
}

type listener struct {
	udp, tcp *mdns.Server
}

type server struct {
	cfg       Config
	mu        sync.Mutex                        // reload
	tables    atomic.Pointer[map[string]*table] // network id -> table
	upstreams atomic.Pointer[[]string]
	listeners map[string]*listener // "netid|ip" -> servers
	lastStat  string
	endpoints int
	quit      chan struct{} // closed by a "quit" control command
	quitOnce  sync.Once
}

// Stop asks a running server to exit and waits until it stopped taking
// commands. No server running is not an error.
func Stop(socket string, timeout time.Duration) error {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("quit\n")); err != nil {
		return err
	}
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}

// Serve runs the server until ctx ends or it has been idle for cfg.IdleExit.
// It returns ErrAlreadyRunning if another server holds cfg.Lock.
func Serve(ctx context.Context, cfg Config) error {
	if cfg.IdleExit == 0 {
		cfg.IdleExit = 2 * time.Second
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	lf, err := os.OpenFile(cfg.Lock, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("dns server: open lock: %w", err)
	}
	defer lf.Close()
	// An exiting server may still hold the lock for a moment: wait a little.
	locked := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			locked = true
			break
		} else if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("dns server: lock %s: %w", cfg.Lock, err)
		}
		if Notify(cfg.Socket, 200*time.Millisecond) == nil {
			return ErrAlreadyRunning
		}
	}
	if !locked {
		return ErrAlreadyRunning
	}

	s := &server{cfg: cfg, listeners: map[string]*listener{}, quit: make(chan struct{})}
	empty := map[string]*table{}
	s.tables.Store(&empty)
	s.upstreams.Store(&[]string{})
	if err := s.reload(true); err != nil {
		return err
	}
	defer s.closeListeners()

	var ctl net.Listener
	ctlDone := make(chan struct{})
	startCtl := func() error {
		_ = os.Remove(cfg.Socket)
		l, err := net.Listen("unix", cfg.Socket)
		if err != nil {
			return fmt.Errorf("dns server: control socket: %w", err)
		}
		ctl, ctlDone = l, make(chan struct{})
		go func(done chan struct{}) {
			defer close(done)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go s.control(c)
			}
		}(ctlDone)
		return nil
	}
	stopCtl := func() {
		ctl.Close()
		os.Remove(cfg.Socket)
		<-ctlDone
	}
	if err := startCtl(); err != nil {
		return err
	}

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	idleSince := time.Now()
	for {
		select {
		case <-ctx.Done():
			stopCtl()
			return nil
		case <-s.quit:
			stopCtl()
			s.closeListeners()
			return nil
		case <-tick.C:
		}
		if err := s.reload(false); err != nil {
			continue // a torn read is retried on the next tick
		}
		if s.count() > 0 {
			idleSince = time.Now()
			continue
		}
		if time.Since(idleSince) < cfg.IdleExit {
			continue
		}
		// Stop taking notifications, then look once more: an Attach that
		// notified us before the socket closed is in the snapshot now; one
		// that did not will start a new server, which waits for our lock.
		stopCtl()
		if err := s.reload(true); err == nil && s.count() == 0 {
			return nil
		}
		idleSince = time.Now()
		if err := startCtl(); err != nil {
			return err
		}
	}
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoints
}

func (s *server) control(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	if line == "quit\n" {
		c.Write([]byte("ok\n"))
		s.quitOnce.Do(func() { close(s.quit) })
		return
	}
	if err := s.reload(true); err != nil {
		fmt.Fprintf(c, "error %v\n", err)
		return
	}
	c.Write([]byte("ok\n"))
}

func statKey(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d/%d/%d", st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
}

// reload rereads the snapshot (if it changed or force) and opens or closes
// listeners to match.
func (s *server) reload(force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := statKey(s.cfg.Snapshot)
	if !force && key == s.lastStat {
		return nil
	}
	snap, err := ReadSnapshot(s.cfg.Snapshot)
	if err != nil {
		return err
	}
	s.lastStat = key
	ups := s.cfg.Upstreams
	if len(ups) == 0 {
		ups = hostResolvers(s.cfg.ResolvConf)
	}
	ups = withPort(ups)
	s.upstreams.Store(&ups)

	tables := map[string]*table{}
	want := map[string]bool{}
	for _, nw := range snap.Networks {
		tables[nw.ID] = buildTable(nw)
		for _, gw := range []string{nw.Gateway4, nw.Gateway6} {
			if gw != "" {
				want[nw.ID+"|"+gw] = true
			}
		}
	}
	s.tables.Store(&tables)
	s.endpoints = snap.Endpoints()
	for k, l := range s.listeners {
		if !want[k] {
			l.udp.Shutdown()
			l.tcp.Shutdown()
			delete(s.listeners, k)
		}
	}
	var errs []error
	for k := range want {
		if s.listeners[k] != nil {
			continue
		}
		id, ip, _ := strings.Cut(k, "|")
		l, err := s.listen(id, ip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.listeners[k] = l
	}
	return errors.Join(errs...)
}

func (s *server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, l := range s.listeners {
		l.udp.Shutdown()
		l.tcp.Shutdown()
		delete(s.listeners, k)
	}
}

func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func (s *server) listen(netID, ip string) (*listener, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("dns server: gateway %q: %w", ip, err)
	}
	suffix := "4"
	if a.Is6() {
		suffix = "6"
	}
	addr := net.JoinHostPort(ip, "53")
	lc := net.ListenConfig{Control: freebind}
	pc, err := lc.ListenPacket(context.Background(), "udp"+suffix, addr)
	if err != nil {
		return nil, fmt.Errorf("dns server: listen udp %s: %w", addr, err)
	}
	tl, err := lc.Listen(context.Background(), "tcp"+suffix, addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns server: listen tcp %s: %w", addr, err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) { s.handle(netID, w, r) })
	l := &listener{
		udp: &mdns.Server{PacketConn: pc, Handler: h},
		tcp: &mdns.Server{Listener: tl, Handler: h},
	}
	startU, startT := make(chan struct{}), make(chan struct{})
	l.udp.NotifyStartedFunc = func() { close(startU) }
	l.tcp.NotifyStartedFunc = func() { close(startT) }
	go l.udp.ActivateAndServe()
	go l.tcp.ActivateAndServe()
	<-startU
	<-startT
	return l, nil
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
					if rev, err := mdns.ReverseAddr(ip); err == nil && ip != "" {
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

func (s *server) handle(netID string, w mdns.ResponseWriter, r *mdns.Msg) {
	m := new(mdns.Msg)
	if len(r.Question) != 1 {
		m.SetRcode(r, mdns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	t := (*s.tables.Load())[netID]
	if t == nil {
		m.SetRcode(r, mdns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	recs, ok := t.names[name]
	if !ok {
		// A container connected to several networks resolves the names
		// of all of them, whichever gateway it asks (as Docker's does).
		if ra, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
			if me, found := t.self[ra.Addr().Unmap()]; found {
				for id, t2 := range *s.tables.Load() {
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
	}
	if ok && q.Qclass == mdns.ClassINET {
		m.SetReply(r)
		m.Authoritative = true
		m.RecursionAvailable = true
		for _, rec := range recs {
			if (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY) && rec.IP4 != "" {
				m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(q.Name, mdns.TypeA), A: net.ParseIP(rec.IP4)})
			}
			if (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY) && rec.IP6 != "" {
				m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr(q.Name, mdns.TypeAAAA), AAAA: net.ParseIP(rec.IP6)})
			}
		}
		w.WriteMsg(m)
		return
	}
	if target, ok := t.ptr[name]; ok && q.Qtype == mdns.TypePTR {
		m.SetReply(r)
		m.Authoritative = true
		m.RecursionAvailable = true
		m.Answer = append(m.Answer, &mdns.PTR{Hdr: hdr(q.Name, mdns.TypePTR), Ptr: target})
		w.WriteMsg(m)
		return
	}
	if t.internal {
		m.SetRcode(r, mdns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	}
	ups := *s.upstreams.Load()
	if ra, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		if own, ok := t.bySrc[ra.Addr().Unmap()]; ok {
			ups = own
		}
	}
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	c := &mdns.Client{Net: proto, Timeout: 3 * time.Second}
	for _, up := range ups {
		resp, _, err := c.Exchange(r, up)
		if err == nil && resp != nil {
			resp.Id = r.Id
			w.WriteMsg(resp)
			return
		}
	}
	m.SetRcode(r, mdns.RcodeServerFailure)
	w.WriteMsg(m)
}

func hdr(name string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: 600}
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
