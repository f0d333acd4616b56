package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/moby/api/types/container"
	mnet "github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/network"
	"github.com/berth-project/berth/network/netfiles"
)

// EndpointInfo is a container's place on one network.
type EndpointInfo struct {
	NetworkID  string
	EndpointID string
	IP         string
	PrefixLen  int
	Gateway    string
	IPv6       string `json:",omitempty"`
	PrefixV6   int    `json:",omitempty"`
	GatewayV6  string `json:",omitempty"`
	MAC        string
	Aliases    []string `json:",omitempty"`
}

type netState struct {
	once sync.Once
	m    *network.Manager
	err  error
}

// Network returns the engine's network manager, opened on first use.
func (e *Engine) Network() (*network.Manager, error) {
	e.netw.once.Do(func() {
		opts := network.Options{
			DefaultBridge: os.Getenv("BERTH_BRIDGE"),
			DefaultSubnet: os.Getenv("BERTH_DEFAULT_SUBNET"), // used when the network database is made
			Table:         os.Getenv("BERTH_NFT_TABLE"),
			StartDNS:      e.startDNS,
		}
		e.netw.m, e.netw.err = network.NewWithOptions(e.cfg.Root, e.cfg.RunDir, opts)
	})
	return e.netw.m, e.netw.err
}

// startDNS starts the embedded DNS server (`berth __dns`) detached.
func (e *Engine) startDNS() error {
	cmd := exec.Command(e.cfg.BerthPath, "--root", e.cfg.Root, "--run-dir", e.cfg.RunDir, "__dns")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout = devnull, devnull
	logf, err := os.OpenFile(filepath.Join(e.cfg.RunDir, "dns.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err == nil {
		defer logf.Close()
		cmd.Stderr = logf
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the DNS server: %w", err)
	}
	go cmd.Wait()
	return cmd.Process.Release()
}

// networkName is the network a container's NetworkMode names, "" for
// modes without one (none, host, container:).
func networkName(hc *container.HostConfig) string {
	switch nm := string(hc.NetworkMode); {
	case nm == "" || nm == "default" || nm == "bridge":
		return network.DefaultNetwork
	case nm == "none" || nm == "host" || strings.HasPrefix(nm, "container:"):
		return ""
	default:
		return nm
	}
}

// portMappings turns -p and -P into the network library's mappings.
func portMappings(cfg *container.Config, hc *container.HostConfig) ([]network.PortMapping, error) {
	var out []network.PortMapping
	seen := map[string]bool{}
	add := func(p mnet.Port, b mnet.PortBinding) error {
		pm := network.PortMapping{ContainerPort: p.Num(), Proto: string(p.Proto())}
		if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
			pm.HostIP = b.HostIP.String()
		}
		if b.HostPort != "" {
			lo, hi, _ := strings.Cut(b.HostPort, "-")
			n, err := strconv.ParseUint(lo, 10, 16)
			if err != nil {
				return fmt.Errorf("invalid host port %q", b.HostPort)
			}
			pm.HostPort = uint16(n)
			if hi != "" {
				m, err := strconv.ParseUint(hi, 10, 16)
				if err != nil {
					return fmt.Errorf("invalid host port %q", b.HostPort)
				}
				pm.HostPortEnd = uint16(m)
			}
		}
		seen[p.String()] = true
		out = append(out, pm)
		return nil
	}
	var keys []mnet.Port
	for p := range hc.PortBindings {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, p := range keys {
		for _, b := range hc.PortBindings[p] {
			if err := add(p, b); err != nil {
				return nil, err
			}
		}
	}
	if hc.PublishAllPorts {
		for p := range cfg.ExposedPorts {
			if !seen[p.String()] {
				if err := add(p, mnet.PortBinding{}); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// checkNetworkMode validates --network at create.
func (e *Engine) checkNetworkMode(c *Container) error {
	hc := c.HostConfig
	name := networkName(hc)
	if name == "" {
		if len(hc.PortBindings) > 0 && (hc.NetworkMode.IsHost() || hc.NetworkMode.IsNone() || hc.NetworkMode.IsContainer()) {
			return fmt.Errorf("published ports are discarded with --network %s: remove -p", hc.NetworkMode)
		}
		return nil
	}
	m, err := e.Network()
	if err != nil {
		return err
	}
	if _, err := m.Inspect(name); err != nil {
		return fmt.Errorf("network %s not found: %w", name, err)
	}
	if _, err := portMappings(c.Config, hc); err != nil {
		return err
	}
	return nil
}

// setupNetwork gives a starting container its network namespace and
// connects it: a pinned sandbox attached to its network (default bridge or
// a user network), a sandbox with only loopback for --network none.
// It returns the namespace path for the spec ("" for host).
func (e *Engine) setupNetwork(ctx context.Context, c *Container) (string, error) {
	hc := c.HostConfig
	switch {
	case hc.NetworkMode.IsHost():
		c.Network = &NetworkInfo{Mode: "host"}
		return "", nil
	case hc.NetworkMode.IsContainer():
		other, err := e.Get(strings.TrimPrefix(string(hc.NetworkMode), "container:"))
		if err != nil {
			return "", fmt.Errorf("--network %s: %w", hc.NetworkMode, err)
		}
		if other.State.Status != "running" {
			return "", fmt.Errorf("--network %s: container %s is not running: %w", hc.NetworkMode, other.Name, ErrConflict)
		}
		key := fmt.Sprintf("/proc/%d/ns/net", other.State.Pid)
		if other.Network != nil && other.Network.SandboxKey != "" {
			key = other.Network.SandboxKey
		}
		c.Network = &NetworkInfo{Mode: string(hc.NetworkMode), SandboxKey: key}
		return key, nil
	}
	m, err := e.Network()
	if err != nil {
		return "", err
	}
	m.RemoveSandbox(c.ID) // a leftover of a killed start
	sb, err := m.CreateSandbox(c.ID)
	if err != nil {
		return "", fmt.Errorf("network namespace of %s: %w", c.Name, err)
	}
	c.Network = &NetworkInfo{Mode: string(hc.NetworkMode), SandboxKey: sb}
	name := networkName(hc)
	if name == "" {
		c.Network.Mode = "none"
		return sb, nil
	}
	if c.Network.Mode == "" || c.Network.Mode == "default" {
		c.Network.Mode = "bridge"
	}
	ports, err := portMappings(c.Config, hc)
	if err != nil {
		m.RemoveSandbox(c.ID)
		return "", err
	}
	opts := network.EndpointOptions{Name: c.Name, Ports: ports, Aliases: c.NetworkAliases}
	if c.StaticIP != "" {
		opts.IP = net.ParseIP(c.StaticIP)
	}
	for _, d := range hc.DNS {
		opts.DNS = append(opts.DNS, d.String())
	}
	ep, err := m.Attach(ctx, c.ID, name, sb, opts)
	if err != nil {
		m.RemoveSandbox(c.ID)
		return "", err
	}
	c.Network.record(ep)
	if name != network.DefaultNetwork {
		if err := m.EnsureDNS(ctx); err != nil {
			runtimeWarn("DNS server for %s: %v", c.Name, err)
		}
	}
	return sb, nil
}

func runtimeWarn(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "berth: warning: "+format+"\n", a...)
}

// record notes an endpoint in the container's network info.
func (n *NetworkInfo) record(ep *network.Endpoint) {
	if n.Networks == nil {
		n.Networks = map[string]*EndpointInfo{}
	}
	ei := &EndpointInfo{NetworkID: ep.NetworkID, EndpointID: ep.ID, PrefixLen: ep.PrefixLen, MAC: ep.MAC.String(), Aliases: ep.Aliases}
	if ep.IP != nil {
		ei.IP = ep.IP.String()
	}
	if ep.Gateway != nil {
		ei.Gateway = ep.Gateway.String()
	}
	if ep.IPv6 != nil {
		ei.IPv6, ei.PrefixV6 = ep.IPv6.String(), ep.PrefixLenV6
	}
	if ep.GatewayV6 != nil {
		ei.GatewayV6 = ep.GatewayV6.String()
	}
	n.Networks[ep.NetworkName] = ei
	if n.Ports == nil {
		n.Ports = map[string][]string{}
	}
	for _, p := range ep.Ports {
		host := p.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		k := fmt.Sprintf("%d/%s", p.ContainerPort, p.Proto)
		n.Ports[k] = append(n.Ports[k], net.JoinHostPort(host, strconv.Itoa(int(p.HostPort))))
	}
}

// teardownNetwork releases a stopped container's network.
func (e *Engine) teardownNetwork(c *Container) {
	if c.HostConfig.NetworkMode.IsContainer() || c.HostConfig.NetworkMode.IsHost() {
		return
	}
	if c.Network == nil || c.Network.SandboxKey == "" {
		// Never recorded: a start killed after it made the namespace
		// (before the record said running) may have left one.
		if m, err := e.Network(); err == nil {
			if _, err := os.Lstat(m.SandboxPath(c.ID)); err == nil {
				if err := m.RemoveSandbox(c.ID); err != nil && !errors.Is(err, network.ErrNotFound) {
					runtimeWarn("remove the network namespace of %s: %v", c.Name, err)
				}
			}
		}
		return
	}
	if m, err := e.Network(); err == nil {
		if err := m.RemoveSandbox(c.ID); err != nil && !errors.Is(err, network.ErrNotFound) {
			runtimeWarn("remove the network namespace of %s: %v", c.Name, err)
		}
	}
}

// netFiles renders the container's /etc/hosts and /etc/resolv.conf for
// its networks.
func (e *Engine) netFiles(c *Container, hostname string) (hosts, resolv []byte, err error) {
	hc := c.HostConfig
	var ips []net.IP
	var embedded net.IP
	if c.Network != nil {
		names := make([]string, 0, len(c.Network.Networks))
		for n := range c.Network.Networks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ei := c.Network.Networks[n]
			if ip := net.ParseIP(ei.IP); ip != nil {
				ips = append(ips, ip)
			}
			if n != network.DefaultNetwork && embedded == nil {
				embedded = net.ParseIP(ei.Gateway)
			}
		}
	}
	if len(ips) == 0 && !hc.NetworkMode.IsHost() {
		ips = []net.IP{net.ParseIP("127.0.1.1")}
	}
	extra := hc.ExtraHosts
	for i, h := range extra {
		if strings.HasSuffix(h, ":host-gateway") || strings.HasSuffix(h, "=host-gateway") {
			gw := "127.0.0.1"
			if c.Network != nil {
				for _, ei := range c.Network.Networks {
					if ei.Gateway != "" {
						gw = ei.Gateway
					}
				}
			}
			extra = append([]string(nil), extra...)
			extra[i] = h[:len(h)-len("host-gateway")] + gw
		}
	}
	if hc.NetworkMode.IsHost() {
		hosts, _ = os.ReadFile("/etc/hosts")
		for _, h := range extra {
			name, ip, err := netfiles.ParseExtraHost(h)
			if err != nil {
				return nil, nil, err
			}
			hosts = append(hosts, []byte(ip+"\t"+name+"\n")...)
		}
	} else if hosts, err = netfiles.Hosts(netfiles.HostsConfig{Hostname: hostname, Domain: c.Config.Domainname, IPs: ips, ExtraHosts: extra}); err != nil {
		return nil, nil, err
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	rc := netfiles.ResolvConfig{Host: host, Embedded: embedded, HostNetwork: hc.NetworkMode.IsHost(), Search: hc.DNSSearch, Options: hc.DNSOptions}
	for _, d := range hc.DNS {
		rc.Nameservers = append(rc.Nameservers, d.String())
	}
	return hosts, netfiles.ResolvConf(rc), nil
}

// lockForNetwork resolves ref, opens the network manager and takes the
// container's lock, for connect and disconnect.
func (e *Engine) lockForNetwork(ref string) (*Container, *network.Manager, func(), error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := e.Network()
	if err != nil {
		return nil, nil, nil, err
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, m, unlock, nil
}

// Connect attaches a container to one more network (`network connect`).
func (e *Engine) Connect(ctx context.Context, netName, ref string, aliases []string, ip string) error {
	c, m, unlock, err := e.lockForNetwork(ref)
	if err != nil {
		return err
	}
	defer unlock()
	if c.State.Status != "running" || c.Network == nil || c.Network.SandboxKey == "" || c.HostConfig.NetworkMode.IsContainer() || c.HostConfig.NetworkMode.IsHost() {
		return fmt.Errorf("container %s must be running with its own network namespace to connect it: %w", c.Name, ErrConflict)
	}
	opts := network.EndpointOptions{Name: c.Name, Aliases: aliases}
	if ip != "" {
		opts.IP = net.ParseIP(ip)
	}
	ep, err := m.Attach(ctx, c.ID, netName, c.Network.SandboxKey, opts)
	if err != nil {
		return err
	}
	if ep.NetworkName != network.DefaultNetwork {
		m.EnsureDNS(ctx)
	}
	c, err = e.modify(c.ID, func(c *Container) error { c.Network.record(ep); return nil })
	if err != nil {
		return err
	}
	e.rewriteNetFiles(c)
	e.event("network", "connect", nil, map[string]string{"id": ep.NetworkID, "container": c.ID, "name": netName})
	return nil
}

// Disconnect detaches a container from a network.
func (e *Engine) Disconnect(ctx context.Context, netName, ref string) error {
	c, m, unlock, err := e.lockForNetwork(ref)
	if err != nil {
		return err
	}
	defer unlock()
	res, err := m.Inspect(netName)
	if err != nil {
		return err
	}
	if err := m.Detach(ctx, c.ID, res.Name); err != nil {
		return err
	}
	c, err = e.modify(c.ID, func(c *Container) error {
		if c.Network != nil {
			delete(c.Network.Networks, res.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.rewriteNetFiles(c)
	e.event("network", "disconnect", nil, map[string]string{"id": res.ID, "container": c.ID, "name": res.Name})
	return nil
}

// rewriteNetFiles updates /etc/hosts and /etc/resolv.conf after connect
// or disconnect (a container that joins a user network asks its DNS).
func (e *Engine) rewriteNetFiles(c *Container) {
	hosts, resolv, err := e.netFiles(c, c.Config.Hostname)
	if err != nil {
		return
	}
	// In place (truncate and write): the container's bind mounts follow
	// the inode, not the name.
	os.WriteFile(filepath.Join(e.ctrDir(c.ID), "hosts"), hosts, 0o644)
	os.WriteFile(filepath.Join(e.ctrDir(c.ID), "resolv.conf"), resolv, 0o644)
}
