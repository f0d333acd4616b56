package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/berth-project/berth/network/dns"
	"github.com/berth-project/berth/network/ipam"
	"github.com/berth-project/berth/network/nft"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// delLink deletes a link; one already gone (a veth whose namespace the
// kernel is tearing down) is not an error.
func delLink(h *netlink.Handle, l netlink.Link) error {
	if err := h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// isNetns reports whether path is a mounted network namespace.
func isNetns(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

func setSysctl(path, val string) error {
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == val {
		return nil
	}
	if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.TrimPrefix(path, "/proc/sys/"), val, err)
	}
	return nil
}

// ensureBridge makes n's bridge exist, carry its gateway addresses and be up.
func (m *Manager) ensureBridge(h *netlink.Handle, st *state, n *netRecord) (netlink.Link, error) {
	l, err := h.LinkByName(n.Bridge)
	if err != nil {
		st.bridgeCreated = true
		if !isNotFound(err) {
			return nil, fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = n.Bridge
		la.MTU = 1500
		la.HardwareAddr, _ = net.ParseMAC(n.BridgeMAC)
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", n.Bridge, err)
		}
		if l, err = h.LinkByName(n.Bridge); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", n.Bridge, err)
		}
	}
	if l.Type() != "bridge" {
		return nil, fmt.Errorf("link %s exists and is not a bridge: %w", n.Bridge, ErrInUse)
	}
	want := map[netip.Addr]int{}
	if n.Gateway4.IsValid() {
		want[n.Gateway4] = n.Subnet4.Bits()
	}
	if n.Gateway6.IsValid() {
		want[n.Gateway6] = n.Subnet6.Bits()
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", n.Bridge, err)
	}
	for _, a := range addrs {
		if p, ok := toPrefix(a.IPNet); ok {
			delete(want, p.Addr())
		}
	}
	for a, bits := range want {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}}
		if a.Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("add %s/%d to %s: %w", a, bits, n.Bridge, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("set %s up: %w", n.Bridge, err)
		}
	}
	if n.Subnet4.IsValid() {
		if err := setSysctl("/proc/sys/net/ipv4/conf/"+n.Bridge+"/route_localnet", "1"); err != nil {
			return nil, err
		}
	}
	if !n.Internal {
		if err := setSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
			return nil, err
		}
		if n.IPv6 {
			if err := setSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1"); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// plumb creates e's veth pair: the host end on the bridge, the other end
// named e.IfName (chosen now if empty) inside the sandbox with e's
// addresses and, for the first external network, the default routes. It
// returns a function that undoes it.
func (m *Manager) plumb(h *netlink.Handle, st *state, n *netRecord, e *epRecord, br netlink.Link) (func(), error) {
	ns, err := netns.GetFromPath(e.Sandbox)
	if err != nil {
		return nil, fmt.Errorf("open sandbox %s: %w", e.Sandbox, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in sandbox %s: %w", e.Sandbox, err)
	}
	defer nh.Close()
	if e.IfName == "" {
		links, err := linkList(nh)
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", e.Sandbox, err)
		}
		have := map[string]bool{}
		for _, l := range links {
			have[l.Attrs().Name] = true
		}
		for i := 0; ; i++ {
			if name := "eth" + strconv.Itoa(i); !have[name] {
				e.IfName = name
				break
			}
		}
	}
	mac, _ := net.ParseMAC(e.MAC)
	la := netlink.NewLinkAttrs()
	la.Name = e.HostIf
	la.MTU = br.Attrs().MTU
	la.MasterIndex = br.Attrs().Index
	la.Flags = net.FlagUp
	veth := &netlink.Veth{LinkAttrs: la, PeerName: e.IfName, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(ns))}
	if err := h.LinkAdd(veth); err != nil {
		// A veth left by a process killed before it committed.
		if old, lerr := h.LinkByName(e.HostIf); errors.Is(err, unix.EEXIST) && lerr == nil {
			_ = h.LinkDel(old)
			err = h.LinkAdd(veth)
		}
		if err != nil {
			return nil, fmt.Errorf("create veth %s: %w", e.HostIf, err)
		}
	}
	undo := func() {
		if l, err := h.LinkByName(e.HostIf); err == nil {
			_ = h.LinkDel(l)
		}
	}
	if err := configureInside(nh, n, e); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

func configureInside(nh *netlink.Handle, n *netRecord, e *epRecord) error {
	peer, err := nh.LinkByName(e.IfName)
	if err != nil {
		return fmt.Errorf("find %s in sandbox: %w", e.IfName, err)
	}
	if e.IP4.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: e.IP4.AsSlice(), Mask: net.CIDRMask(n.Subnet4.Bits(), 32)}}
		if err := nh.AddrAdd(peer, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", a.IPNet, e.IfName, err)
		}
	}
	if e.IP6.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: e.IP6.AsSlice(), Mask: net.CIDRMask(n.Subnet6.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
		if err := nh.AddrAdd(peer, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", a.IPNet, e.IfName, err)
		}
	}
	if err := nh.LinkSetUp(peer); err != nil {
		return fmt.Errorf("set %s up: %w", e.IfName, err)
	}
	if n.Internal {
		return nil
	}
	if e.IP4.IsValid() {
		if err := addDefaultRoute(nh, netlink.FAMILY_V4, peer, n.Gateway4); err != nil {
			return err
		}
	}
	if e.IP6.IsValid() {
		if err := addDefaultRoute(nh, netlink.FAMILY_V6, peer, n.Gateway6); err != nil {
			return err
		}
	}
	return nil
}

// addDefaultRoute adds a default route via gw unless the sandbox has one.
func addDefaultRoute(nh *netlink.Handle, family int, l netlink.Link, gw netip.Addr) error {
	routes, err := retryDump(func() ([]netlink.Route, error) { return nh.RouteList(nil, family) })
	if err != nil {
		return fmt.Errorf("routes of sandbox: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && func() bool { o, _ := r.Dst.Mask.Size(); return o == 0 }() {
			return nil
		}
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}
	if err := nh.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}

// SandboxPath is where CreateSandbox pins a container's network namespace.
func (m *Manager) SandboxPath(containerID string) string {
	return filepath.Join(m.runDir, "netns", "berth-"+containerID)
}

func checkContainerID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." || len(id) > 128 {
		return fmt.Errorf("container id %q: %w", id, ErrInvalid)
	}
	return nil
}

// CreateSandbox creates a network namespace for a container, pins it at
// SandboxPath(containerID) and brings its loopback up.
func (m *Manager) CreateSandbox(containerID string) (string, error) {
	if err := checkContainerID(containerID); err != nil {
		return "", err
	}
	path := m.SandboxPath(containerID)
	if isNetns(path) {
		return "", fmt.Errorf("sandbox of %s: %w", shortID(containerID), ErrExists)
	}
	_ = os.Remove(path) // an unmounted leftover
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return "", fmt.Errorf("create sandbox file: %w", err)
	}
	f.Close()
	if err := pinNewNetns(path); err != nil {
		os.Remove(path)
		return "", err
	}
	if err := loUp(path); err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// pinNewNetns creates a network namespace on a locked thread and
// bind-mounts it to path, then returns the thread to its namespace.
func pinNewNetns(path string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		merr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime discards it when this
			// goroutine exits, so no goroutine runs in the wrong netns.
			errc <- fmt.Errorf("restore netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		if merr != nil {
			merr = fmt.Errorf("pin netns at %s: %w", path, merr)
		}
		errc <- merr
	}()
	return <-errc
}

func loUp(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open sandbox %s: %w", path, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in sandbox: %w", err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err == nil {
		err = nh.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("sandbox loopback up: %w", err)
	}
	return nil
}

// RemoveSandbox detaches the container from every network and unpins its
// network namespace. Removing a sandbox that does not exist is not an error.
func (m *Manager) RemoveSandbox(containerID string) error {
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	// Most sandboxes being removed have no endpoint left (--network none,
	// or detached already): look first, so they cost no synced write.
	has := false
	if err := m.view(func(st *state) error {
		for _, e := range st.endpoints {
			has = has || e.ContainerID == containerID
		}
		return nil
	}); err != nil {
		return err
	}
	var userNet bool
	var err error
	if has {
		err = m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
			var changed bool
			for _, e := range append([]*epRecord(nil), st.endpoints...) {
				if e.ContainerID != containerID {
					continue
				}
				// No LinkDel: unpinning the namespace below destroys it (once the
				// container's processes are gone) and the kernel deletes its veths
				// asynchronously, which spares this call ~30 ms per veth. Any
				// veth still alive later is unowned and removed by Reconcile.
				st.removeEndpoint(e)
				if err := deleteEndpoint(tx, e); err != nil {
					return err
				}
				changed = true
				if n := st.networkByID(e.NetworkID); n != nil && !n.Default {
					userNet = true
					st.dnsDirty = true
				}
			}
			if changed {
				return nft.ApplyPorts(m.ruleset(st))
			}
			return nil
		})
	}
	if err != nil {
		return err
	}
	if userNet {
		m.notifyDNS()
	}
	path := m.SandboxPath(containerID)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin sandbox %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove sandbox %s: %w", path, err)
	}
	return nil
}

func unplumb(h *netlink.Handle, e *epRecord) {
	if l, err := h.LinkByName(e.HostIf); err == nil {
		_ = h.LinkDel(l) // takes the peer inside the sandbox with it
	}
}

// Attach connects the sandbox of a container to a network: it allocates
// addresses, plumbs a veth pair and publishes ports. It works on running
// containers too (docker network connect): the new interface is the next
// free ethN of the sandbox.
func (m *Manager) Attach(ctx context.Context, containerID, network, sandboxPath string, opts EndpointOptions) (*Endpoint, error) {
	if err := checkContainerID(containerID); err != nil {
		return nil, err
	}
	if !isNetns(sandboxPath) {
		return nil, fmt.Errorf("sandbox %s is not a pinned network namespace: %w", sandboxPath, ErrInvalid)
	}
	for _, p := range opts.Ports {
		if err := p.check(); err != nil {
			return nil, err
		}
	}
	for _, a := range append([]string{opts.Name}, opts.Aliases...) {
		if strings.ContainsAny(a, " \t\n/") {
			return nil, fmt.Errorf("name or alias %q: %w", a, ErrInvalid)
		}
	}
	for _, s := range opts.DNS {
		if net.ParseIP(s) == nil {
			return nil, fmt.Errorf("dns server %q is not an IP address: %w", s, ErrInvalid)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out Endpoint
	var userNet bool
	err := m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
		hook("attach-begin")
		n, err := st.network(network)
		if err != nil {
			return err
		}
		if n.Driver != "bridge" {
			return fmt.Errorf("network %q (driver %s) takes no endpoints: %w", n.Name, n.Driver, ErrInvalid)
		}
		if st.endpoint(n.ID, containerID) != nil {
			return fmt.Errorf("container %s is already attached to network %q: %w", shortID(containerID), n.Name, ErrExists)
		}
		if n.Internal && len(opts.Ports) > 0 {
			return fmt.Errorf("network %q is internal: ports cannot be published: %w", n.Name, ErrInvalid)
		}
		e := &epRecord{ID: randomHex(32), NetworkID: n.ID, ContainerID: containerID, Name: opts.Name,
			Aliases: opts.Aliases, Sandbox: sandboxPath, HostIf: hostIfName(st),
			DNS: opts.DNS, Created: time.Now().UTC()}
		if err := allocate(st, n, e, opts); err != nil {
			return err
		}
		if e.Ports, err = m.resolvePorts(st, n, opts.Ports); err != nil {
			return err
		}
		hook("attach-ports")
		br, err := m.ensureBridge(h, st, n)
		if err != nil {
			return err
		}
		hook("attach-bridge")
		undo, err := m.plumb(h, st, n, e, br)
		if err != nil {
			return err
		}
		hook("attach-veth")
		st.endpoints = append(st.endpoints, e)
		apply := nft.ApplyPorts
		if st.bridgeCreated {
			apply = nft.Apply
		}
		if err := apply(m.ruleset(st)); err != nil {
			undo()
			return err
		}
		hook("attach-nft")
		if err := putEndpoint(tx, e); err == nil {
			err = putNetwork(tx, n)
		}
		if err != nil {
			undo()
			st.removeEndpoint(e)
			_ = nft.Apply(m.ruleset(st))
			return err
		}
		out = m.endpoint(st, e)
		userNet = !n.Default
		st.dnsDirty = userNet
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("attach %s to network %s: %w", shortID(containerID), network, err)
	}
	if userNet {
		m.notifyDNS()
	}
	return &out, nil
}

// allocate sets e's addresses and MAC.
func allocate(st *state, n *netRecord, e *epRecord, opts EndpointOptions) error {
	used4, used6 := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, o := range st.endpointsOf(n.ID) {
		used4[o.IP4] = true
		used6[o.IP6] = true
	}
	if n.Subnet4.IsValid() {
		if opts.IP != nil {
			a, ok := netip.AddrFromSlice(opts.IP)
			if !ok || !a.Unmap().Is4() {
				return fmt.Errorf("ip %s: not an IPv4 address: %w", opts.IP, ErrInvalid)
			}
			a = a.Unmap()
			if err := ipam.Valid(n.Subnet4, netip.Prefix{}, n.Gateway4, a); err != nil {
				return fmt.Errorf("network %q: %w: %w", n.Name, err, ErrInvalid)
			}
			if used4[a] {
				return fmt.Errorf("address %s on network %q: %w", a, n.Name, ErrInUse)
			}
			e.IP4 = a
		} else {
			a, err := ipam.Next(n.Subnet4, n.Range4, n.Gateway4, n.Cursor4, func(a netip.Addr) bool { return used4[a] })
			if err != nil {
				return fmt.Errorf("network %q: %w", n.Name, err)
			}
			e.IP4, n.Cursor4 = a, a
		}
	} else if opts.IP != nil {
		return fmt.Errorf("network %q has no IPv4 subnet: %w", n.Name, ErrInvalid)
	}
	if n.Subnet6.IsValid() {
		if opts.IPv6 != nil {
			a, ok := netip.AddrFromSlice(opts.IPv6)
			if !ok || a.Is4In6() {
				return fmt.Errorf("ipv6 %s: not an IPv6 address: %w", opts.IPv6, ErrInvalid)
			}
			if err := ipam.Valid(n.Subnet6, netip.Prefix{}, n.Gateway6, a); err != nil {
				return fmt.Errorf("network %q: %w: %w", n.Name, err, ErrInvalid)
			}
			if used6[a] {
				return fmt.Errorf("address %s on network %q: %w", a, n.Name, ErrInUse)
			}
			e.IP6 = a
		} else {
			a, err := ipam.Next(n.Subnet6, netip.Prefix{}, n.Gateway6, n.Cursor6, func(a netip.Addr) bool { return used6[a] })
			if err != nil {
				return fmt.Errorf("network %q: %w", n.Name, err)
			}
			e.IP6, n.Cursor6 = a, a
		}
	} else if opts.IPv6 != nil {
		return fmt.Errorf("network %q has IPv6 disabled: %w", n.Name, ErrInvalid)
	}
	switch {
	case opts.MAC != nil:
		if len(opts.MAC) != 6 || opts.MAC[0]&1 != 0 {
			return fmt.Errorf("mac address %s: not a unicast ethernet address: %w", opts.MAC, ErrInvalid)
		}
		e.MAC = opts.MAC.String()
	case e.IP4.IsValid():
		b := e.IP4.As4()
		e.MAC = net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}.String()
	default:
		e.MAC = randomMAC().String()
	}
	return nil
}

// Detach disconnects a container from a network (docker network
// disconnect): removes its interface, rules and addresses.
func (m *Manager) Detach(ctx context.Context, containerID, network string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var userNet bool
	err := m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
		n, err := st.network(network)
		if err != nil {
			return err
		}
		e := st.endpoint(n.ID, containerID)
		if e == nil {
			return fmt.Errorf("container %s is not attached to network %q: %w", shortID(containerID), n.Name, ErrNotFound)
		}
		// Deleting a veth takes ~30 ms of kernel time: done after the lock
		// is released. A crash before it leaves an unowned veth, which the
		// next Reconcile deletes.
		st.after = append(st.after, func() error {
			unplumb(h, e)
			return m.restoreDefaultRoute(st, containerID, e.Sandbox)
		})
		st.removeEndpoint(e)
		if err := deleteEndpoint(tx, e); err != nil {
			return err
		}
		hook("detach-veth")
		if err := nft.ApplyPorts(m.ruleset(st)); err != nil {
			return err
		}
		userNet = !n.Default
		st.dnsDirty = userNet
		return nil
	})
	if err != nil {
		return fmt.Errorf("detach %s from network %s: %w", shortID(containerID), network, err)
	}
	if userNet {
		m.notifyDNS()
	}
	return nil
}

// restoreDefaultRoute gives the sandbox a default route through another of
// its external networks when the detached one carried it.
func (m *Manager) restoreDefaultRoute(st *state, containerID, sandbox string) error {
	var rest []*epRecord
	for _, e := range st.endpoints {
		if e.ContainerID == containerID {
			if n := st.networkByID(e.NetworkID); n != nil && !n.Internal {
				rest = append(rest, e)
			}
		}
	}
	if len(rest) == 0 || !isNetns(sandbox) {
		return nil
	}
	ns, err := netns.GetFromPath(sandbox)
	if err != nil {
		return fmt.Errorf("open sandbox %s: %w", sandbox, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in sandbox: %w", err)
	}
	defer nh.Close()
	for _, e := range rest {
		n := st.networkByID(e.NetworkID)
		l, err := nh.LinkByName(e.IfName)
		if err != nil {
			continue
		}
		if e.IP4.IsValid() {
			if err := addDefaultRoute(nh, netlink.FAMILY_V4, l, n.Gateway4); err != nil {
				return err
			}
		}
		if e.IP6.IsValid() {
			if err := addDefaultRoute(nh, netlink.FAMILY_V6, l, n.Gateway6); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reconcile makes the kernel match the database after a crash or reboot:
// it drops endpoints whose sandbox is gone, re-plumbs endpoints whose veth
// vanished, recreates missing bridges, deletes links of this root that no
// record owns, removes unpinned sandbox files and reinstalls the nftables
// table. It takes a few milliseconds; call it at the start of commands that
// touch networking.
func (m *Manager) Reconcile(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
		st.dnsDirty = true
		links, err := linkList(h)
		if err != nil {
			return err
		}
		byName := map[string]netlink.Link{}
		for _, l := range links {
			byName[l.Attrs().Name] = l
		}
		var errs []error
		bridges := map[string]netlink.Link{}
		for _, n := range st.networks {
			if n.Driver != "bridge" || (n.Default && len(st.endpointsOf(n.ID)) == 0 && byName[n.Bridge] == nil) {
				continue
			}
			br, err := m.ensureBridge(h, st, n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			bridges[n.ID] = br
		}
		for _, e := range append([]*epRecord(nil), st.endpoints...) {
			n := st.networkByID(e.NetworkID)
			if n == nil || !isNetns(e.Sandbox) {
				if l := byName[e.HostIf]; l != nil {
					_ = h.LinkDel(l)
				}
				st.removeEndpoint(e)
				if err := deleteEndpoint(tx, e); err != nil {
					return err
				}
				continue
			}
			br := bridges[n.ID]
			if br == nil {
				continue
			}
			if l := byName[e.HostIf]; l == nil {
				if _, err := m.plumb(h, st, n, e, br); err != nil {
					errs = append(errs, fmt.Errorf("restore endpoint of %s on %s: %w", shortID(e.ContainerID), n.Name, err))
				}
			} else if l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().Flags&net.FlagUp == 0 {
				// The bridge was recreated: put the port back on it.
				if err := h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
					errs = append(errs, fmt.Errorf("attach %s to %s: %w", e.HostIf, n.Bridge, err))
				}
				if err := h.LinkSetUp(l); err != nil {
					errs = append(errs, fmt.Errorf("set %s up: %w", e.HostIf, err))
				}
			}
		}
		owned := map[string]bool{}
		for _, e := range st.endpoints {
			owned[e.HostIf] = true
		}
		for _, n := range st.networks {
			owned[n.Bridge] = true
		}
		for _, l := range links {
			name := l.Attrs().Name
			if strings.HasPrefix(name, linkPrefix(st.tag)) && !owned[name] {
				if err := delLink(h, l); err != nil {
					errs = append(errs, fmt.Errorf("orphan: %w", err))
				}
			}
		}
		dir := filepath.Join(m.runDir, "netns")
		if ents, err := os.ReadDir(dir); err == nil {
			for _, d := range ents {
				p := filepath.Join(dir, d.Name())
				if strings.HasPrefix(d.Name(), "berth-") && !isNetns(p) {
					_ = os.Remove(p)
				}
			}
		}
		if err := nft.Apply(m.ruleset(st)); err != nil {
			return err
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("reconcile network state: %w", err)
	}
	m.notifyDNS()
	return nil
}

// notifyDNS tells a running DNS server to reload; it is quick when none runs.
func (m *Manager) notifyDNS() {
	_ = dns.Notify(m.DNSSocket(), time.Second)
}

// EnsureDNS makes sure the DNS server runs and serves the current state:
// it notifies a running server or starts one with Options.StartDNS and
// waits until it answers. The engine calls it after attaching a container
// to a user-defined network.
func (m *Manager) EnsureDNS(ctx context.Context) error {
	if dns.Notify(m.DNSSocket(), time.Second) == nil {
		return nil
	}
	if m.opts.StartDNS == nil {
		return fmt.Errorf("dns server: not running and no way to start it (Options.StartDNS is nil)")
	}
	if err := m.opts.StartDNS(); err != nil {
		return fmt.Errorf("start dns server: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = dns.Notify(m.DNSSocket(), time.Second); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("dns server did not start: %w", err)
}

// RunDNS serves DNS for this root's user-defined networks until ctx ends or
// no endpoint is left on them (see package dns). It returns
// dns.ErrAlreadyRunning if another server serves this run directory.
func (m *Manager) RunDNS(ctx context.Context) error {
	return dns.Serve(ctx, dns.Config{
		Snapshot:   m.snapshotPath(),
		Socket:     m.DNSSocket(),
		Lock:       filepath.Join(m.runDir, "dns.lock"),
		Upstreams:  m.opts.Upstreams,
		ResolvConf: m.opts.HostResolvConf,
		IdleExit:   m.opts.DNSIdleExit,
	})
}

// HostResolvConf returns the host's resolv.conf content (for netfiles.ResolvConf).
func (m *Manager) HostResolvConf() ([]byte, error) {
	b, err := os.ReadFile(m.opts.HostResolvConf)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read host resolv.conf: %w", err)
	}
	return b, nil
}

// Destroy removes every kernel object of this root: endpoints' veths, all
// bridges (the default one included) and the nftables table, and forgets
// the endpoints. Networks stay in the database; their bridges come back on
// next use. For `system reset` and tests; sandboxes are not unpinned.
func (m *Manager) Destroy(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.update(func(tx *bolt.Tx, st *state, h *netlink.Handle) error {
		st.dnsDirty = true
		for _, e := range append([]*epRecord(nil), st.endpoints...) {
			unplumb(h, e)
			st.removeEndpoint(e)
			if err := deleteEndpoint(tx, e); err != nil {
				return err
			}
		}
		links, err := linkList(h)
		if err != nil {
			return err
		}
		for _, l := range links {
			if name := l.Attrs().Name; strings.HasPrefix(name, linkPrefix(st.tag)) || name == m.opts.DefaultBridge {
				if err := delLink(h, l); err != nil {
					return err
				}
			}
		}
		return nft.Delete(m.opts.Table)
	})
}

// Table is the name of this root's nftables table.
func (m *Manager) Table() string { return m.opts.Table }

// Tag is this root's tag: every link it creates, but the default bridge, is
// named "berth"+tag+"...".
func (m *Manager) Tag() (string, error) {
	var tag string
	err := m.view(func(st *state) error { tag = st.tag; return nil })
	return tag, err
}

// StopDNS asks this run directory's DNS server to exit (system reset).
func (m *Manager) StopDNS() error { return dns.Stop(m.DNSSocket(), 2*time.Second) }
