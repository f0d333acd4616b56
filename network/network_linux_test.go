package network

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
)

var bg = context.Background()

func TestUserNetworkTCPAndDNS(t *testing.T) {
	// A fake upstream resolver on loopback stands in for the host's.
	up := &mdns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == "outside.berth.test." {
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.IPv4(198, 51, 100, 7)})
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	up.NotifyStartedFunc = func() { close(started) }
	go up.ListenAndServe()
	<-started
	t.Cleanup(func() { up.Shutdown() })
	upAddr := up.PacketConn.LocalAddr().String()

	var e *env
	e = newEnv(t, func(o *Options) {
		o.Upstreams = []string{upAddr}
		o.StartDNS = func() error {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"=dns", "BERTH_ROOT="+e.root, "BERTH_RUN="+e.run,
				"BERTH_BRIDGE="+e.opts.DefaultBridge, "BERTH_TABLE="+e.opts.Table, "BERTH_UPSTREAMS="+upAddr)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			return e.start(cmd)
		}
	})
	netName := "berth-t-" + rnd(3)
	nw, err := e.m.Create(NetworkConfig{Name: netName, Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	gw := net.ParseIP(nw.IPAM.Config[0].Gateway)

	aID, aPath := e.sandbox("alpha")
	bID, bPath := e.sandbox("bravo")
	a, err := e.m.Attach(bg, aID, netName, aPath, EndpointOptions{Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.m.Attach(bg, bID, netName, bPath, EndpointOptions{Name: "bravo", Aliases: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.IfName != "eth0" || !a.Gateway.Equal(gw) || a.IP.Equal(b.IP) {
		t.Fatalf("endpoints: %+v %+v", a, b)
	}
	if err := e.m.EnsureDNS(bg); err != nil {
		t.Fatal(err)
	}

	serve(t, bPath, ":8080", "bravo")
	got, err := fetch(aPath, net.JoinHostPort(b.IP.String(), "8080"))
	if err != nil || !strings.HasPrefix(got, "bravo "+a.IP.String()) {
		t.Fatalf("alpha -> bravo: %q %v", got, err)
	}

	ask := func(name string, qt uint16) (*mdns.Msg, error) {
		var resp *mdns.Msg
		err := inNS(aPath, func() (err error) {
			m := new(mdns.Msg)
			m.SetQuestion(mdns.Fqdn(name), qt)
			resp, _, err = (&mdns.Client{Timeout: 2 * time.Second}).Exchange(m, net.JoinHostPort(gw.String(), "53"))
			return err
		})
		return resp, err
	}
	for _, name := range []string{"bravo", "web", "BRAVO", bID[:12], "bravo." + netName} {
		r, err := ask(name, mdns.TypeA)
		if err != nil || len(r.Answer) != 1 || !r.Answer[0].(*mdns.A).A.Equal(b.IP) {
			t.Fatalf("resolve %s from alpha: %v %v", name, r, err)
		}
	}
	r, err := ask("outside.berth.test", mdns.TypeA)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "198.51.100.7" {
		t.Fatalf("forwarded query: %v %v", r, err)
	}

	inspect, err := e.m.Inspect(nw.ID[:8])
	if err != nil || len(inspect.Containers) != 2 || inspect.Labels["a"] != "b" || inspect.Driver != "bridge" {
		t.Fatalf("inspect: %+v %v", inspect, err)
	}
	if err := e.m.Remove(netName); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove network in use: %v", err)
	}

	// Detached: the name stops resolving (the upstream says NXDOMAIN).
	if err := e.m.Detach(bg, bID, netName); err != nil {
		t.Fatal(err)
	}
	r, err = ask("bravo", mdns.TypeA)
	if err != nil || len(r.Answer) != 0 || r.Rcode != mdns.RcodeNameError {
		t.Fatalf("bravo after detach: %v %v", r, err)
	}

	// With no endpoint left on user networks the DNS server exits.
	if err := e.m.RemoveSandbox(aID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(e.m.DNSSocket()); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dns server still running with no endpoints")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := e.m.Remove(netName); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(nw.Options["com.docker.network.bridge.name"]); err == nil {
		t.Fatal("bridge left after network rm")
	}
}

func TestPublishedPorts(t *testing.T) {
	e := newEnv(t, nil)
	ip := hostAddr(t)
	port := freePort(t)
	webID, webPath := e.sandbox("web")
	serve(t, webPath, ":80", "nginx")
	ep, err := e.m.Attach(bg, webID, DefaultNetwork, webPath, EndpointOptions{Name: "web",
		Ports: []PortMapping{{HostPort: port, ContainerPort: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Ports) != 1 || ep.Ports[0].HostPort != port {
		t.Fatalf("ports: %+v", ep.Ports)
	}
	hp := strconv.Itoa(int(port))
	for _, addr := range []string{"127.0.0.1", ip.String()} {
		got, err := fetch("", net.JoinHostPort(addr, hp))
		if err != nil || !strings.HasPrefix(got, "nginx ") {
			t.Fatalf("host -> %s:%s: %q %v", addr, hp, got, err)
		}
	}
	// Hairpin: another container through the host's address.
	cliID, cliPath := e.sandbox("cli")
	cli, err := e.m.Attach(bg, cliID, DefaultNetwork, cliPath, EndpointOptions{Name: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := fetch(cliPath, net.JoinHostPort(ip.String(), hp))
	if err != nil || !strings.HasPrefix(got, "nginx ") {
		t.Fatalf("hairpin cli -> %s:%s: %q %v", ip, hp, got, err)
	}
	_ = cli

	// A second publish of the same port fails before anything is created.
	rules := e.rules()
	links := len(e.links())
	dupID, dupPath := e.sandbox("dup")
	_, err = e.m.Attach(bg, dupID, DefaultNetwork, dupPath, EndpointOptions{Ports: []PortMapping{{HostPort: port, ContainerPort: 80}}})
	if !errors.Is(err, ErrPortAllocated) || !strings.Contains(err.Error(), hp) {
		t.Fatalf("second publish of %s: %v", hp, err)
	}
	t.Logf("second publish: %v", err)
	// A port a host process listens on is refused too.
	hl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	busy := uint16(hl.Addr().(*net.TCPAddr).Port)
	_, err = e.m.Attach(bg, dupID, DefaultNetwork, dupPath, EndpointOptions{Ports: []PortMapping{{HostPort: busy, ContainerPort: 80}}})
	if !errors.Is(err, ErrPortAllocated) {
		t.Fatalf("publish of a port held by a host socket: %v", err)
	}
	if e.rules() != rules || len(e.links()) != links {
		t.Fatalf("failed attach left rules (%d -> %d) or links (%d -> %d)", rules, e.rules(), links, len(e.links()))
	}
	if eps, _ := e.m.Endpoints(dupID); len(eps) != 0 {
		t.Fatalf("failed attach left endpoints: %+v", eps)
	}
	// Ranges and random ports.
	ep2, err := e.m.Attach(bg, dupID, DefaultNetwork, dupPath, EndpointOptions{Ports: []PortMapping{
		{ContainerPort: 81, ContainerPortEnd: 82}, {HostIP: "127.0.0.1", ContainerPort: 83, Proto: "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ep2.Ports) != 3 || ep2.Ports[0].HostPort == 0 || ep2.Ports[2].Proto != "udp" || ep2.Ports[2].HostIP != "127.0.0.1" {
		t.Fatalf("resolved ports: %+v", ep2.Ports)
	}
	// Unpublished after detach.
	if err := e.m.Detach(bg, webID, DefaultNetwork); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch("", net.JoinHostPort("127.0.0.1", hp)); err == nil {
		t.Fatalf("port still answers after detach: %q", got)
	}
}

func TestIsolationAndConnect(t *testing.T) {
	e := newEnv(t, nil)
	n1, n2 := "berth-t1-"+rnd(2), "berth-t2-"+rnd(2)
	for _, n := range []string{n1, n2} {
		if _, err := e.m.Create(NetworkConfig{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	aID, aPath := e.sandbox("a")
	bID, bPath := e.sandbox("b")
	if _, err := e.m.Attach(bg, aID, n1, aPath, EndpointOptions{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	b, err := e.m.Attach(bg, bID, n2, bPath, EndpointOptions{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, bPath, ":7000", "b")
	target := net.JoinHostPort(b.IP.String(), "7000")
	if got, err := fetch(aPath, target); err == nil {
		t.Fatalf("a on %s reached b on %s: %q", n1, n2, got)
	}
	a2, err := e.m.Attach(bg, aID, n2, aPath, EndpointOptions{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if a2.IfName != "eth1" {
		t.Fatalf("second interface is %s, want eth1", a2.IfName)
	}
	if got, err := fetch(aPath, target); err != nil || !strings.HasPrefix(got, "b "+a2.IP.String()) {
		t.Fatalf("a -> b after connect: %q %v", got, err)
	}
	if err := e.m.Detach(bg, aID, n2); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch(aPath, target); err == nil {
		t.Fatalf("a reached b after disconnect: %q", got)
	}
	if err := e.m.Detach(bg, aID, n2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second disconnect: %v", err)
	}
}

// outside builds a namespace acting as a host beyond the machine: joined to
// the host by a veth, with no route back to any container subnet, serving
// TCP on 203.0.113.2:9000 and telling each client the address it sees.
func outside(t *testing.T, e *env) string {
	t.Helper()
	id, path := e.sandbox("outside")
	_ = id
	host := "berthto" + rnd(3)
	la := netlink.NewLinkAttrs()
	la.Name = host
	ns, err := netlinkNs(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(host); err == nil {
			netlink.LinkDel(l)
		}
	})
	l, _ := netlink.LinkByName(host)
	a, _ := netlink.ParseAddr("203.0.113.1/24")
	if err := netlink.AddrAdd(l, a); err != nil {
		t.Fatal(err)
	}
	netlink.LinkSetUp(l)
	err = inNS(path, func() error {
		p, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		a, _ := netlink.ParseAddr("203.0.113.2/24")
		if err := netlink.AddrAdd(p, a); err != nil {
			return err
		}
		return netlink.LinkSetUp(p)
	})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, path, "203.0.113.2:9000", "outside")
	return "203.0.113.2:9000"
}

func TestMasqueradeAndInternal(t *testing.T) {
	e := newEnv(t, nil)
	target := outside(t, e)
	ext, in := "berth-text-"+rnd(2), "berth-tint-"+rnd(2)
	if _, err := e.m.Create(NetworkConfig{Name: ext}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(NetworkConfig{Name: in, Internal: true}); err != nil {
		t.Fatal(err)
	}
	xID, xPath := e.sandbox("x")
	iID, iPath := e.sandbox("i")
	if _, err := e.m.Attach(bg, xID, ext, xPath, EndpointOptions{}); err != nil {
		t.Fatal(err)
	}
	ie, err := e.m.Attach(bg, iID, in, iPath, EndpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ie.Gateway != nil {
		t.Fatalf("internal endpoint has a gateway: %v", ie.Gateway)
	}
	got, err := fetch(xPath, target)
	if err != nil || !strings.HasPrefix(got, "outside 203.0.113.1:") {
		t.Fatalf("outbound from %s: %q %v (want it masqueraded to 203.0.113.1)", ext, got, err)
	}
	if got, err := fetch(iPath, target); err == nil {
		t.Fatalf("internal network reached the outside: %q", got)
	}
	if _, err := e.m.Attach(bg, iID+"p", in, iPath, EndpointOptions{Ports: []PortMapping{{ContainerPort: 80}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("publish on internal network: %v", err)
	}
}

func TestConcurrentAttach(t *testing.T) {
	e := newEnv(t, nil)
	name := "berth-tc-" + rnd(2)
	if _, err := e.m.Create(NetworkConfig{Name: name, Subnet: "10.251.7.0/24"}); err != nil {
		t.Fatal(err)
	}
	// A second Manager on the same root stands for another berth process.
	other, err := NewWithOptions(e.root, e.run, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	ids, paths := make([]string, n), make([]string, n)
	for i := range n {
		ids[i], paths[i] = e.sandbox("c")
	}
	eps := make([]*Endpoint, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := e.m
			if i%2 == 1 {
				m = other
			}
			eps[i], errs[i] = m.Attach(bg, ids[i], name, paths[i], EndpointOptions{Name: "c" + strconv.Itoa(i)})
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent attaches: %v", n, time.Since(start))
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[eps[i].IP.String()] {
			t.Fatalf("address %s given twice", eps[i].IP)
		}
		seen[eps[i].IP.String()] = true
	}
	nr, err := e.m.Inspect(name)
	if err != nil || len(nr.Containers) != n {
		t.Fatalf("inspect after concurrent attach: %d containers, %v", len(nr.Containers), err)
	}
}

func TestKillDuringAttach(t *testing.T) {
	for _, step := range []string{"attach-veth", "attach-nft", "commit"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, nil)
			name := "berth-tk-" + rnd(2)
			if _, err := e.m.Create(NetworkConfig{Name: name}); err != nil {
				t.Fatal(err)
			}
			baseRules := e.rules()
			baseLinks := len(e.links())
			id, path := e.sandbox("k")
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"=attach", "BERTH_KILL_AT="+step, "BERTH_ROOT="+e.root,
				"BERTH_RUN="+e.run, "BERTH_BRIDGE="+e.opts.DefaultBridge, "BERTH_TABLE="+e.opts.Table,
				"BERTH_CID="+id, "BERTH_NET="+name, "BERTH_SANDBOX="+path)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child was not killed at %s: %v %s", step, err, out)
			}
			if err := e.m.Reconcile(bg); err != nil {
				t.Fatal(err)
			}
			eps, err := e.m.Endpoints(id)
			if err != nil {
				t.Fatal(err)
			}
			if step == "commit" {
				// Committed: the attach stands, consistent with the kernel.
				if len(eps) != 1 || e.rules() <= baseRules || !e.waitLinks(baseLinks+1) {
					t.Fatalf("after kill at commit: %d endpoints, %d rules, links %v", len(eps), e.rules(), e.links())
				}
				if err := e.m.RemoveSandbox(id); err != nil {
					t.Fatal(err)
				}
			} else if len(eps) != 0 {
				t.Fatalf("uncommitted endpoint survived: %+v", eps)
			}
			if e.rules() != baseRules || !e.waitLinks(baseLinks) {
				t.Fatalf("after kill at %s and reconcile: rules %d (want %d), links %v", step, e.rules(), baseRules, e.links())
			}
			nr, _ := e.m.Inspect(name)
			if len(nr.Containers) != 0 {
				t.Fatalf("allocation left: %+v", nr.Containers)
			}
		})
	}
}

func TestReconcileRestoresKernelState(t *testing.T) {
	e := newEnv(t, nil)
	name := "berth-tr-" + rnd(2)
	nw, err := e.m.Create(NetworkConfig{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	aID, aPath := e.sandbox("a")
	bID, bPath := e.sandbox("b")
	e.m.Attach(bg, aID, name, aPath, EndpointOptions{})
	b, err := e.m.Attach(bg, bID, name, bPath, EndpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, bPath, ":7000", "b")
	// Simulate losing the kernel objects: delete the bridge (its ports go
	// with it? no: veths stay, detached) and one veth, and the table.
	br, _ := netlink.LinkByName(nw.Options["com.docker.network.bridge.name"])
	netlink.LinkDel(br)
	veth, _ := netlink.LinkByName(b.HostIfName)
	netlink.LinkDel(veth)
	if err := e.m.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	// The recreated veth may take a moment (a's neighbour entry for b
	// still names the old link's address): retry for a few seconds.
	var got string
	for deadline := time.Now().Add(8 * time.Second); ; {
		got, err = fetch(aPath, net.JoinHostPort(b.IP.String(), "7000"))
		if (err == nil && strings.HasPrefix(got, "b ")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !strings.HasPrefix(got, "b ") {
		t.Fatalf("after reconcile: %q %v", got, err)
	}
	// A sandbox unpinned behind berth's back: its endpoint is dropped.
	if err := syscall.Unmount(aPath, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Reconcile(bg); err != nil {
		t.Fatal(err)
	}
	if eps, _ := e.m.Endpoints(aID); len(eps) != 0 {
		t.Fatalf("endpoint of a gone sandbox survived: %+v", eps)
	}
	if _, err := os.Stat(aPath); !os.IsNotExist(err) {
		t.Fatalf("unpinned sandbox file not removed: %v", err)
	}
}

func TestNetworkLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	before := len(e.links())
	if _, err := e.m.Create(NetworkConfig{Name: "bad name"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := e.m.Create(NetworkConfig{Name: "berth-x", Subnet: "10.0.0.0/33"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad subnet: %v", err)
	}
	a, err := e.m.Create(NetworkConfig{Name: "berth-tl-" + rnd(2), Subnet: "10.252.0.0/16", IPRange: "10.252.5.0/24", Gateway: "10.252.0.254"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Create(NetworkConfig{Name: "berth-o-" + rnd(2), Subnet: "10.252.9.0/24"}); !errors.Is(err, ErrInUse) {
		t.Fatalf("overlapping subnet: %v", err)
	}
	if _, err := e.m.Create(NetworkConfig{Name: a.Name}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	id, path := e.sandbox("r")
	ep, err := e.m.Attach(bg, id, a.Name, path, EndpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.IP.String(), "10.252.5.") || ep.Gateway.String() != "10.252.0.254" {
		t.Fatalf("address %s gateway %s, want in 10.252.5.0/24 via 10.252.0.254", ep.IP, ep.Gateway)
	}
	if _, err := e.m.Attach(bg, id+"2", a.Name, path, EndpointOptions{IP: ep.IP}); !errors.Is(err, ErrInUse) {
		t.Fatalf("duplicate --ip: %v", err)
	}
	list, err := e.m.List()
	if err != nil || len(list) != 4 {
		t.Fatalf("list: %d networks, %v", len(list), err)
	}
	if err := e.m.Detach(bg, id, a.Name); err != nil {
		t.Fatal(err)
	}
	b, err := e.m.Create(NetworkConfig{Name: "berth-tp-" + rnd(2), IPv6: true, SubnetV6: "fd00:be:7::/64"})
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := e.m.Prune()
	if err != nil || len(pruned) != 2 {
		t.Fatalf("prune: %v %v", pruned, err)
	}
	if _, err := e.m.Inspect(b.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect pruned: %v", err)
	}
	if !e.waitLinks(before) {
		t.Fatalf("links after rm: %v", e.links())
	}
	if err := e.m.Remove(DefaultNetwork); !errors.Is(err, ErrInvalid) {
		t.Fatalf("remove default: %v", err)
	}
}

func TestDualStack(t *testing.T) {
	e := newEnv(t, nil)
	name := "berth-t6-" + rnd(2)
	if _, err := e.m.Create(NetworkConfig{Name: name, IPv6: true, SubnetV6: "fd00:be:6::/64"}); err != nil {
		t.Fatal(err)
	}
	aID, aPath := e.sandbox("a")
	bID, bPath := e.sandbox("b")
	if _, err := e.m.Attach(bg, aID, name, aPath, EndpointOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := e.m.Attach(bg, bID, name, bPath, EndpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.IPv6 == nil || !strings.HasPrefix(b.IPv6.String(), "fd00:be:6::") {
		t.Fatalf("ipv6: %v", b.IPv6)
	}
	serve(t, bPath, "[::]:7000", "b6")
	got, err := fetch(aPath, net.JoinHostPort(b.IPv6.String(), "7000"))
	if err != nil || !strings.HasPrefix(got, "b6 [fd00:be:6::") {
		t.Fatalf("ipv6 a -> b: %q %v", got, err)
	}
}

// benchManager is a Manager of a benchmark, with its own root, default
// bridge and nftables table, destroyed at the end.
func benchManager(b *testing.B) *Manager {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	root, run := b.TempDir(), b.TempDir()
	id := rnd(3)
	m, err := NewWithOptions(root, run, Options{DefaultBridge: "berthB" + id, Table: "berth_b" + id})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Destroy(bg) })
	return m
}

// benchSandbox creates a sandbox of m, removed at the end of the benchmark.
func benchSandbox(b *testing.B, m *Manager) (cid, path string) {
	b.Helper()
	cid = "bench" + rnd(4)
	path, err := m.CreateSandbox(cid)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.RemoveSandbox(cid) })
	return cid, path
}

func BenchmarkAttachDetach(b *testing.B) {
	m := benchManager(b)
	cid, path := benchSandbox(b, m)
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Attach(bg, cid, DefaultNetwork, path, EndpointOptions{Ports: []PortMapping{{ContainerPort: 80}}}); err != nil {
			b.Fatal(err)
		}
		if err := m.Detach(bg, cid, DefaultNetwork); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReconcile(b *testing.B) {
	m := benchManager(b)
	cid, path := benchSandbox(b, m)
	if _, err := m.Attach(bg, cid, DefaultNetwork, path, EndpointOptions{Ports: []PortMapping{{ContainerPort: 80}}}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := m.Reconcile(bg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSandboxAttachRemove is the container start/stop path: create a
// sandbox, attach it to the default network, remove it.
func BenchmarkSandboxAttachRemove(b *testing.B) {
	m := benchManager(b)
	for b.Loop() {
		cid := "bench" + rnd(4)
		path, err := m.CreateSandbox(cid)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Attach(bg, cid, DefaultNetwork, path, EndpointOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := m.RemoveSandbox(cid); err != nil {
			b.Fatal(err)
		}
	}
}
