package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/network/dns"
	"github.com/berth-project/berth/network/ipam"
	"github.com/berth-project/berth/network/nft"
	"github.com/vishvananda/netlink"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Manager is berth's networking state for one root. Safe for concurrent use
// by goroutines and by other processes on the same root.
type Manager struct {
	dir    string // root/network
	runDir string
	opts   Options
	mu     sync.Mutex
}

// testHook is called at named points of mutating operations; tests set it
// to kill the process mid-operation.
var testHook func(step string)

func hook(step string) {
	if testHook != nil {
		testHook(step)
	}
}

// New opens (creating on first use) the network state under root/network
// and uses runDir for sandboxes and the DNS server's socket.
func New(root, runDir string) (*Manager, error) {
	return NewWithOptions(root, runDir, Options{})
}

// NewWithOptions is New with non-default Options.
func NewWithOptions(root, runDir string, o Options) (*Manager, error) {
	if o.DefaultBridge == "" {
		o.DefaultBridge = "berth0"
	}
	if len(o.DefaultBridge) > 15 {
		return nil, fmt.Errorf("default bridge name %q longer than 15 bytes: %w", o.DefaultBridge, ErrInvalid)
	}
	if o.Table == "" {
		o.Table = "berth"
	}
	if o.HostResolvConf == "" {
		o.HostResolvConf = "/etc/resolv.conf"
	}
	if o.DNSIdleExit == 0 {
		o.DNSIdleExit = 2 * time.Second
	}
	m := &Manager{dir: filepath.Join(root, "network"), runDir: runDir, opts: o}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("network state dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(runDir, "netns"), 0o755); err != nil {
		return nil, fmt.Errorf("network run dir: %w", err)
	}
	var needInit bool
	err := m.view(func(st *state) error { needInit = st.tag == ""; return nil })
	if err != nil {
		return nil, err
	}
	if needInit {
		if err := m.update(func(tx *bolt.Tx, st *state, _ *netlink.Handle) error { return m.initDB(tx, st) }); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Manager) initDB(tx *bolt.Tx, st *state) error {
	if st.tag != "" {
		return nil
	}
	subnet, err := m.defaultSubnet(st)
	if err != nil {
		return err
	}
	b, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	tag, err := newTag()
	if err != nil {
		return err
	}
	if err := b.Put(keyTag, []byte(tag)); err != nil {
		return err
	}
	st.tag = tag
	st.dnsDirty = true
	now := time.Now().UTC()
	nets := []*netRecord{
		{ID: randomHex(32), Name: DefaultNetwork, Driver: "bridge", Bridge: m.opts.DefaultBridge, Default: true,
			Created: now, Subnet4: subnet, Gateway4: ipam.Gateway(subnet), BridgeMAC: randomMAC().String(),
			Options: map[string]string{"com.docker.network.bridge.default_bridge": "true",
				"com.docker.network.bridge.name": m.opts.DefaultBridge}},
		{ID: randomHex(32), Name: HostNetwork, Driver: "host", Created: now},
		{ID: randomHex(32), Name: NoneNetwork, Driver: "null", Created: now},
	}
	for _, n := range nets {
		if err := putNetwork(tx, n); err != nil {
			return err
		}
		st.networks = append(st.networks, n)
	}
	return nil
}

// hostPrefixes lists the host's routes and addresses, to avoid when
// choosing subnets.
func hostPrefixes() ([]netip.Prefix, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	var out []netip.Prefix
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue // default route: collides with nothing specific
		}
		if p, ok := toPrefix(r.Dst); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := toPrefix(a.IPNet); ok {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

func (m *Manager) defaultSubnet(st *state) (netip.Prefix, error) {
	if m.opts.DefaultSubnet != "" {
		p, err := netip.ParsePrefix(m.opts.DefaultSubnet)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("default subnet %q: not an IPv4 CIDR: %w", m.opts.DefaultSubnet, ErrInvalid)
		}
		return p.Masked(), nil
	}
	return m.autoSubnet(st)
}

func (m *Manager) autoSubnet(st *state) (netip.Prefix, error) {
	used, err := hostPrefixes()
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, n := range st.networks {
		if n.Subnet4.IsValid() {
			used = append(used, n.Subnet4)
		}
	}
	pool := ipam.DefaultPool()
	if len(m.opts.Pool) > 0 {
		pool = nil
		for _, s := range m.opts.Pool {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return netip.Prefix{}, fmt.Errorf("address pool entry %q: %w", s, ErrInvalid)
			}
			pool = append(pool, p.Masked())
		}
	}
	return ipam.ChooseSubnet(pool, used)
}

// lock takes the cross-process lock of this root.
func (m *Manager) lock() (func(), error) {
	m.mu.Lock()
	f, err := os.OpenFile(filepath.Join(m.dir, "lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("network lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		m.mu.Unlock()
		return nil, fmt.Errorf("network lock: %w", err)
	}
	return func() { f.Close(); m.mu.Unlock() }, nil
}

func (m *Manager) openDB() (*bolt.DB, error) {
	db, err := bolt.Open(filepath.Join(m.dir, "network.db"), 0o600, &bolt.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open network db: %w", err)
	}
	return db, nil
}

// view runs fn on a consistent copy of the state.
func (m *Manager) view(fn func(st *state) error) error {
	return m.withDB(func(db *bolt.DB) error {
		return db.View(func(tx *bolt.Tx) error {
			st, err := loadState(tx)
			if err != nil {
				return err
			}
			return fn(st)
		})
	})
}

// withDB runs fn on the state database, under the state lock.
func (m *Manager) withDB(fn func(db *bolt.DB) error) error {
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	db, err := m.openDB()
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

// update runs fn in one write transaction with a host netlink handle; the
// transaction commits only if fn succeeds. Afterwards the DNS snapshot is
// rewritten from the committed state.
func (m *Manager) update(fn func(tx *bolt.Tx, st *state, h *netlink.Handle) error) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	var final *state
	err = m.withDB(func(db *bolt.DB) error {
		err := db.Update(func(tx *bolt.Tx) error {
			st, err := loadState(tx)
			if err != nil {
				return err
			}
			if err := fn(tx, st, h); err != nil {
				return err
			}
			final = st
			return nil
		})
		if err != nil {
			return err
		}
		hook("commit")
		if !final.dnsDirty {
			return nil
		}
		return dns.WriteSnapshot(m.snapshotPath(), m.dnsSnapshot(final))
	})
	if final != nil {
		for _, f := range final.after {
			err = errors.Join(err, f())
		}
	}
	return err
}

func (m *Manager) snapshotPath() string { return filepath.Join(m.dir, "dns.json") }

// DNSSocket is the DNS server's control socket.
func (m *Manager) DNSSocket() string { return filepath.Join(m.runDir, "dns.sock") }

// linkPrefix starts the name of every link this root creates except the
// default bridge: "berth" + the root's tag. Reconcile deletes the links with
// this prefix that no record owns (a crash between creating a link and
// committing leaves such a link), and leaves other roots' links alone.
func linkPrefix(tag string) string { return "berth" + tag }

func (m *Manager) ruleset(st *state) nft.Ruleset {
	rs := nft.Ruleset{Table: m.opts.Table}
	for _, n := range st.networks {
		if n.Driver != "bridge" {
			continue
		}
		rs.Bridges = append(rs.Bridges, nft.Bridge{Name: n.Bridge, Subnet4: n.Subnet4, Subnet6: n.Subnet6, Internal: n.Internal})
	}
	for _, e := range st.endpoints {
		for _, p := range e.Ports {
			var hip netip.Addr
			if p.HostIP != "" {
				hip, _ = netip.ParseAddr(p.HostIP)
				hip = hip.Unmap()
			}
			port := nft.Port{Proto: p.Proto, HostIP: hip, HostPort: p.HostPort, DestPort: p.ContainerPort}
			if e.IP4.IsValid() && (!hip.IsValid() || hip.Is4()) {
				port.Dest = e.IP4
				if hip.IsValid() && hip.IsUnspecified() {
					port.HostIP = netip.Addr{}
				}
				rs.Ports = append(rs.Ports, port)
			}
			if e.IP6.IsValid() && (!hip.IsValid() || hip.Is6()) {
				port.Dest = e.IP6
				port.HostIP = hip
				if hip.IsValid() && hip.IsUnspecified() {
					port.HostIP = netip.Addr{}
				}
				rs.Ports = append(rs.Ports, port)
			}
		}
	}
	return rs
}

func (m *Manager) dnsSnapshot(st *state) *dns.Snapshot {
	s := &dns.Snapshot{}
	for _, n := range st.networks {
		if n.Driver != "bridge" || n.Default {
			continue
		}
		nw := dns.Network{ID: n.ID, Name: n.Name, Internal: n.Internal}
		if n.Gateway4.IsValid() {
			nw.Gateway4 = n.Gateway4.String()
		}
		if n.Gateway6.IsValid() {
			nw.Gateway6 = n.Gateway6.String()
		}
		for _, e := range st.endpointsOf(n.ID) {
			r := dns.Record{Upstreams: e.DNS}
			if e.Name != "" {
				r.Names = append(r.Names, e.Name)
			}
			r.Names = append(r.Names, e.Aliases...)
			r.Names = append(r.Names, shortID(e.ContainerID))
			if e.IP4.IsValid() {
				r.IP4 = e.IP4.String()
			}
			if e.IP6.IsValid() {
				r.IP6 = e.IP6.String()
			}
			nw.Records = append(nw.Records, r)
		}
		s.Networks = append(s.Networks, nw)
	}
	return s
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Create makes a user-defined bridge network and its bridge.
func (m *Manager) Create(cfg NetworkConfig) (*NetworkResource, error) {
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("network name %q: must match %s: %w", cfg.Name, nameRE, ErrInvalid)
	}
	if cfg.Name == DefaultNetwork || cfg.Name == HostNetwork || cfg.Name == NoneNetwork {
		return nil, fmt.Errorf("network name %q is predefined: %w", cfg.Name, ErrExists)
	}
	var out *NetworkResource
	err := m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
		for _, n := range st.networks {
			if n.Name == cfg.Name {
				return fmt.Errorf("network %q: %w", cfg.Name, ErrExists)
			}
		}
		n, err := m.newNetwork(st, cfg)
		if err != nil {
			return err
		}
		st.dnsDirty = true
		st.networks = append(st.networks, n)
		if err := putNetwork(tx, n); err != nil {
			return err
		}
		if _, err := m.ensureBridge(h, st, n); err != nil {
			return err
		}
		created := true
		defer func() {
			if created {
				return
			}
			if l, err := h.LinkByName(n.Bridge); err == nil {
				_ = h.LinkDel(l)
			}
		}()
		hook("create-bridge")
		if err := nft.Apply(m.ruleset(st)); err != nil {
			created = false
			return err
		}
		out = m.resource(st, n)
		return nil
	})
	return out, err
}

func (m *Manager) newNetwork(st *state, cfg NetworkConfig) (*netRecord, error) {
	n := &netRecord{ID: randomHex(32), Name: cfg.Name, Driver: "bridge", Created: time.Now().UTC(),
		Internal: cfg.Internal, IPv6: cfg.IPv6, Labels: cfg.Labels, Options: cfg.Options, BridgeMAC: randomMAC().String()}
	n.Bridge = linkPrefix(st.tag) + "-" + n.ID[:5]
	var err error
	if cfg.Subnet != "" {
		if n.Subnet4, err = netip.ParsePrefix(cfg.Subnet); err != nil || !n.Subnet4.Addr().Is4() {
			return nil, fmt.Errorf("subnet %q: not an IPv4 CIDR: %w", cfg.Subnet, ErrInvalid)
		}
		if n.Subnet4.Bits() > 30 {
			return nil, fmt.Errorf("subnet %q: too small (at most /30): %w", cfg.Subnet, ErrInvalid)
		}
		n.Subnet4 = n.Subnet4.Masked()
	} else if n.Subnet4, err = m.autoSubnet(st); err != nil {
		return nil, err
	}
	n.Gateway4 = ipam.Gateway(n.Subnet4)
	if cfg.Gateway != "" {
		if n.Gateway4, err = netip.ParseAddr(cfg.Gateway); err != nil || !n.Subnet4.Contains(n.Gateway4) {
			return nil, fmt.Errorf("gateway %q: not an address of subnet %s: %w", cfg.Gateway, n.Subnet4, ErrInvalid)
		}
	}
	if cfg.IPRange != "" {
		if n.Range4, err = netip.ParsePrefix(cfg.IPRange); err != nil || !n.Subnet4.Contains(n.Range4.Addr()) || n.Range4.Bits() < n.Subnet4.Bits() {
			return nil, fmt.Errorf("ip range %q: not a CIDR inside subnet %s: %w", cfg.IPRange, n.Subnet4, ErrInvalid)
		}
		n.Range4 = n.Range4.Masked()
	}
	if cfg.IPv6 || cfg.SubnetV6 != "" {
		n.IPv6 = true
		if cfg.SubnetV6 != "" {
			if n.Subnet6, err = netip.ParsePrefix(cfg.SubnetV6); err != nil || !n.Subnet6.Addr().Is6() || n.Subnet6.Addr().Is4In6() {
				return nil, fmt.Errorf("ipv6 subnet %q: not an IPv6 CIDR: %w", cfg.SubnetV6, ErrInvalid)
			}
			if n.Subnet6.Bits() > 126 {
				return nil, fmt.Errorf("ipv6 subnet %q: too small: %w", cfg.SubnetV6, ErrInvalid)
			}
			n.Subnet6 = n.Subnet6.Masked()
		} else {
			n.Subnet6 = ipam.RandomULA()
		}
		n.Gateway6 = ipam.Gateway(n.Subnet6)
		if cfg.GatewayV6 != "" {
			if n.Gateway6, err = netip.ParseAddr(cfg.GatewayV6); err != nil || !n.Subnet6.Contains(n.Gateway6) {
				return nil, fmt.Errorf("ipv6 gateway %q: not an address of subnet %s: %w", cfg.GatewayV6, n.Subnet6, ErrInvalid)
			}
		}
	}
	for _, o := range st.networks {
		if o.Subnet4.IsValid() && o.Subnet4.Overlaps(n.Subnet4) {
			return nil, fmt.Errorf("subnet %s overlaps network %q (%s): %w", n.Subnet4, o.Name, o.Subnet4, ErrInUse)
		}
		if n.Subnet6.IsValid() && o.Subnet6.IsValid() && o.Subnet6.Overlaps(n.Subnet6) {
			return nil, fmt.Errorf("ipv6 subnet %s overlaps network %q (%s): %w", n.Subnet6, o.Name, o.Subnet6, ErrInUse)
		}
	}
	return n, nil
}

// List returns all networks sorted by name.
func (m *Manager) List() ([]NetworkResource, error) {
	var out []NetworkResource
	err := m.view(func(st *state) error {
		for _, n := range st.networks {
			out = append(out, *m.resource(st, n))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Inspect returns one network by name, id or unique id prefix.
func (m *Manager) Inspect(ref string) (*NetworkResource, error) {
	var out *NetworkResource
	err := m.view(func(st *state) error {
		n, err := st.network(ref)
		if err != nil {
			return err
		}
		out = m.resource(st, n)
		return nil
	})
	return out, err
}

func (m *Manager) resource(st *state, n *netRecord) *NetworkResource {
	r := &NetworkResource{Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
		EnableIPv6: n.IPv6, Internal: n.Internal, IPAM: IPAM{Driver: "default", Config: []IPAMConfig{}},
		Containers: map[string]EndpointResource{}, Options: map[string]string{}, Labels: map[string]string{}}
	if n.Subnet4.IsValid() {
		c := IPAMConfig{Subnet: n.Subnet4.String(), Gateway: n.Gateway4.String()}
		if n.Range4.IsValid() {
			c.IPRange = n.Range4.String()
		}
		r.IPAM.Config = append(r.IPAM.Config, c)
	}
	if n.Subnet6.IsValid() {
		r.IPAM.Config = append(r.IPAM.Config, IPAMConfig{Subnet: n.Subnet6.String(), Gateway: n.Gateway6.String()})
	}
	for k, v := range n.Options {
		r.Options[k] = v
	}
	if n.Driver == "bridge" {
		r.Options["com.docker.network.bridge.name"] = n.Bridge
	}
	for k, v := range n.Labels {
		r.Labels[k] = v
	}
	for _, e := range st.endpointsOf(n.ID) {
		er := EndpointResource{Name: e.Name, EndpointID: e.ID, MacAddress: e.MAC}
		if e.IP4.IsValid() {
			er.IPv4Address = netip.PrefixFrom(e.IP4, n.Subnet4.Bits()).String()
		}
		if e.IP6.IsValid() {
			er.IPv6Address = netip.PrefixFrom(e.IP6, n.Subnet6.Bits()).String()
		}
		r.Containers[e.ContainerID] = er
	}
	return r
}

// Remove deletes a user-defined network; it refuses while containers are
// attached.
func (m *Manager) Remove(ref string) error {
	return m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
		n, err := st.network(ref)
		if err != nil {
			return err
		}
		return m.removeNetwork(tx, st, h, n)
	})
}

func (m *Manager) removeNetwork(tx *bolt.Tx, st *state, h *netlink.Handle, n *netRecord) error {
	if n.Default || n.Driver != "bridge" {
		return fmt.Errorf("network %q is predefined and cannot be removed: %w", n.Name, ErrInvalid)
	}
	if eps := st.endpointsOf(n.ID); len(eps) > 0 {
		var names []string
		for _, e := range eps {
			names = append(names, displayName(e))
		}
		return fmt.Errorf("network %q has active endpoints (%s): %w", n.Name, strings.Join(names, ", "), ErrInUse)
	}
	st.dnsDirty = true
	for i, x := range st.networks {
		if x == n {
			st.networks = append(st.networks[:i], st.networks[i+1:]...)
			break
		}
	}
	if err := deleteNetwork(tx, n.ID); err != nil {
		return err
	}
	if err := nft.Apply(m.ruleset(st)); err != nil {
		return err
	}
	if l, err := h.LinkByName(n.Bridge); err == nil {
		if err := delLink(h, l); err != nil {
			return err
		}
	}
	return nil
}

func displayName(e *epRecord) string {
	if e.Name != "" {
		return e.Name
	}
	return shortID(e.ContainerID)
}

// Prune removes every user-defined network without endpoints and returns
// their names.
func (m *Manager) Prune() ([]string, error) {
	var removed []string
	err := m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
		for _, n := range append([]*netRecord(nil), st.networks...) {
			if n.Default || n.Driver != "bridge" || len(st.endpointsOf(n.ID)) > 0 {
				continue
			}
			if err := m.removeNetwork(tx, st, h, n); err != nil {
				return err
			}
			removed = append(removed, n.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// Endpoints returns the endpoints of a container, eth0 first.
func (m *Manager) Endpoints(containerID string) ([]Endpoint, error) {
	var out []Endpoint
	err := m.view(func(st *state) error {
		for _, e := range st.endpoints {
			if e.ContainerID == containerID {
				out = append(out, m.endpoint(st, e))
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return ifIndex(out[i].IfName) < ifIndex(out[j].IfName) })
	return out, err
}

func ifIndex(name string) int {
	var n int
	fmt.Sscanf(strings.TrimPrefix(name, "eth"), "%d", &n)
	return n
}

func (m *Manager) endpoint(st *state, e *epRecord) Endpoint {
	n := st.networkByID(e.NetworkID)
	out := Endpoint{ID: e.ID, NetworkID: e.NetworkID, ContainerID: e.ContainerID, Name: e.Name,
		Aliases: e.Aliases, SandboxPath: e.Sandbox, IfName: e.IfName, HostIfName: e.HostIf,
		Ports: e.Ports}
	out.MAC, _ = net.ParseMAC(e.MAC)
	if n != nil {
		out.NetworkName = n.Name
		out.Bridge = n.Bridge
		if e.IP4.IsValid() {
			out.IP = net.IP(e.IP4.AsSlice())
			out.PrefixLen = n.Subnet4.Bits()
			if !n.Internal {
				out.Gateway = net.IP(n.Gateway4.AsSlice())
			}
		}
		if e.IP6.IsValid() {
			out.IPv6 = net.IP(e.IP6.AsSlice())
			out.PrefixLenV6 = n.Subnet6.Bits()
			if !n.Internal {
				out.GatewayV6 = net.IP(n.Gateway6.AsSlice())
			}
		}
	}
	return out
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomMAC() net.HardwareAddr {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	b[0] = (b[0] | 0x02) & 0xfe // locally administered, unicast
	return b
}

// newTag picks a root tag no existing link name uses.
func newTag() (string, error) {
	links, err := linkList(nil)
	if err != nil {
		return "", err
	}
	for {
		tag := randomHex(2)
		clash := false
		for _, l := range links {
			clash = clash || strings.HasPrefix(l.Attrs().Name, linkPrefix(tag))
		}
		if !clash {
			return tag, nil
		}
	}
}

// hostIfName picks the host end name of a new veth: linkPrefix + 6 random
// hex digits, unused by any endpoint.
func hostIfName(st *state) string {
	for {
		name := linkPrefix(st.tag) + randomHex(3)
		used := false
		for _, e := range st.endpoints {
			used = used || e.HostIf == name
		}
		if !used {
			return name
		}
	}
}

// linkList lists links with h (or the package handle if nil), retrying a
// dump interrupted by concurrent changes.
func linkList(h *netlink.Handle) ([]netlink.Link, error) {
	for try := 0; ; try++ {
		var ls []netlink.Link
		var err error
		if h == nil {
			ls, err = netlink.LinkList()
		} else {
			ls, err = h.LinkList()
		}
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < 10 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		return ls, nil
	}
}

// retryDump retries a netlink dump interrupted by concurrent changes.
func retryDump[T any](f func() (T, error)) (T, error) {
	for try := 0; ; try++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < 10 {
			continue
		}
		return v, err
	}
}
