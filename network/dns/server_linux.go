package dns

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

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

// Limits of the listeners (the usual ones of DNS servers).
const (
	maxInFlight    = 1024            // UDP queries being answered; more are dropped
	tcpFirstRead   = 2 * time.Second // to read a TCP connection's first query
	tcpIdle        = 8 * time.Second // to read each next one
	tcpWrite       = 2 * time.Second // to write a reply
	tcpMaxQueries  = 128             // per TCP connection
	acceptBackoff  = 10 * time.Millisecond
	maxMessageSize = 0xffff
)

// listener is one network's UDP and TCP sockets on one gateway address.
type listener struct {
	udp   *net.UDPConn
	tcp   *net.TCPListener
	loops sync.WaitGroup // the read and accept loops
	mu    sync.Mutex
	conns map[net.Conn]struct{} // open TCP connections
	shut  bool
}

type server struct {
	resolver
	cfg       Config
	mu        sync.Mutex           // reload
	listeners map[string]*listener // "netid|ip" -> sockets
	inFlight  chan struct{}        // one token per UDP query being answered
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

	s := &server{cfg: cfg, listeners: map[string]*listener{}, inFlight: make(chan struct{}, maxInFlight), quit: make(chan struct{})}
	s.exchange = exchange
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
			l.close()
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
		l.close()
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
	l := &listener{udp: pc.(*net.UDPConn), tcp: tl.(*net.TCPListener), conns: map[net.Conn]struct{}{}}
	l.loops.Add(2)
	go s.serveUDP(netID, l)
	go s.serveTCP(netID, l)
	return l, nil
}

// close closes the sockets and open connections and waits until the loops
// have returned, so the address is free to bind again.
func (l *listener) close() {
	l.udp.Close()
	l.tcp.Close()
	l.mu.Lock()
	l.shut = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.loops.Wait()
}

func (s *server) serveUDP(netID string, l *listener) {
	defer l.loops.Done()
	buf := make([]byte, maxMessageSize)
	for {
		n, from, err := l.udp.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n == 0 {
			continue
		}
		select {
		case s.inFlight <- struct{}{}:
		default:
			continue // overloaded: drop it, the client will retry
		}
		msg := append([]byte(nil), buf[:n]...)
		go func() {
			defer func() { <-s.inFlight }()
			if out := s.answer(netID, from.Addr().Unmap(), false, msg); out != nil {
				_, _ = l.udp.WriteToUDPAddrPort(out, from)
			}
		}()
	}
}

func (s *server) serveTCP(netID string, l *listener) {
	defer l.loops.Done()
	for {
		c, err := l.tcp.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(acceptBackoff) // out of descriptors, most likely
			continue
		}
		l.mu.Lock()
		if l.shut {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		go func() {
			s.serveConn(netID, c)
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

// serveConn answers the length-prefixed queries of one TCP connection in
// turn.
func (s *server) serveConn(netID string, c *net.TCPConn) {
	defer c.Close()
	var src netip.Addr
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		src = ra.AddrPort().Addr().Unmap()
	}
	timeout := tcpFirstRead
	var l [2]byte
	for range tcpMaxQueries {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		timeout = tcpIdle
		out := s.answer(netID, src, true, msg)
		if out == nil || len(out) > maxMessageSize {
			continue
		}
		framed := make([]byte, 2+len(out))
		binary.BigEndian.PutUint16(framed, uint16(len(out)))
		copy(framed[2:], out)
		_ = c.SetWriteDeadline(time.Now().Add(tcpWrite))
		if _, err := c.Write(framed); err != nil {
			return
		}
	}
}
