package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

// hostAddr is an address of this host other than loopback.
func hostAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() && !strings.HasPrefix(ip.IP.String(), "172.") && !strings.HasPrefix(ip.IP.String(), "10.") {
			return ip.IP.String()
		}
	}
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil && !ip.IP.IsLoopback() {
			return ip.IP.String()
		}
	}
	t.Fatal("no host address")
	return ""
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestPublishedPort(t *testing.T) {
	id := runDetached(t, "--name", "berth-pub", "-p", "18080:80", "web:1")
	for _, url := range []string{"http://127.0.0.1:18080/", "http://" + hostAddr(t) + ":18080/"} {
		var body string
		eventually(t, 10*time.Second, "nginx through "+url, func() bool {
			body, _ = get(url)
			return strings.Contains(body, "<h1>served from a container</h1>")
		})
	}
	if out := must(t, "port", id); strings.TrimSpace(out) != "80/tcp -> 0.0.0.0:18080" {
		t.Fatalf("port: %q", out)
	}
	if out := must(t, "ps", "--filter", "name=berth-pub", "--format", "{{.Ports}}"); !strings.Contains(out, "0.0.0.0:18080->80/tcp") {
		t.Fatalf("ps PORTS: %q", out)
	}
	// A second publish of the port is a clear error before anything starts.
	before := leakSnapshot()
	r := berth(t, "run", "-d", "--name", "berth-pub2", "-p", "18080:80", "busybox:1.35", "sleep", "60")
	t.Cleanup(func() { berth(t, "rm", "-f", "berth-pub2") })
	if r.code == 0 || !strings.Contains(r.err, "18080") {
		t.Fatalf("second publish of 18080: exit %d, %q", r.code, r.err)
	}
	berth(t, "rm", "-f", "berth-pub2")
	if leaks := testutil.Added(before, leakSnapshot()); len(leaks) > 0 {
		t.Fatalf("the failed run left: %v", leaks)
	}
	// Hairpin: another container reaches it through the host's address.
	out := must(t, "run", "--rm", "busybox:1.35", "wget", "-q", "-O", "-", "http://"+hostAddr(t)+":18080/")
	if !strings.Contains(out, "served from a container") {
		t.Fatalf("hairpin through the host address: %q", out)
	}
	// A port held by a host socket is refused too.
	l, err := net.Listen("tcp", "127.0.0.1:18081")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r := berth(t, "run", "--rm", "-p", "127.0.0.1:18081:80", "busybox:1.35", "true"); r.code == 0 {
		t.Fatal("published a port a host socket holds")
	}
}

func TestUserNetworkNamesAndIsolation(t *testing.T) {
	must(t, "network", "create", "berth-neta")
	must(t, "network", "create", "berth-netb")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-neta", "berth-netb") })
	a := runDetached(t, "--name", "berth-srv", "--network", "berth-neta", "--network-alias", "websrv", "busybox:1.35", "sh", "-c", "echo hello-from-srv > /index.html; httpd -f -p 80 -h /")
	_ = a
	for _, name := range []string{"berth-srv", "websrv", a[:12]} {
		var out string
		eventually(t, 10*time.Second, "name "+name+" to answer", func() bool {
			out = berth(t, "run", "--rm", "--network", "berth-neta", "busybox:1.35", "timeout", "3", "wget", "-q", "-O", "-", "http://"+name+"/index.html").out
			return out == "hello-from-srv\n"
		})
	}
	// A container on another user network cannot reach it, by name or address.
	ip := inspect(t, a, `{{(index .NetworkSettings.Networks "berth-neta").IPAddress}}`)
	if ip == "" || ip == "<no value>" {
		t.Fatalf("no address in inspect: %q", must(t, "inspect", a))
	}
	b := runDetached(t, "--name", "berth-cli", "--network", "berth-netb", "busybox:1.35", "sleep", "300")
	if r := berth(t, "exec", b, "timeout", "3", "wget", "-q", "-O", "-", "http://"+ip+"/index.html"); r.code == 0 {
		t.Fatalf("a container on berth-netb reached berth-neta: %q", r.out)
	}
	// After network connect it can; after disconnect it cannot.
	must(t, "network", "connect", "berth-neta", b)
	if out := must(t, "exec", b, "timeout", "3", "wget", "-q", "-O", "-", "http://berth-srv/index.html"); out != "hello-from-srv\n" {
		t.Fatalf("after connect: %q", out)
	}
	must(t, "network", "disconnect", "berth-neta", b)
	if r := berth(t, "exec", b, "timeout", "3", "wget", "-q", "-O", "-", "http://"+ip+"/index.html"); r.code == 0 {
		t.Fatal("still reachable after disconnect")
	}
	// DNS stops answering for a removed container.
	must(t, "rm", "-f", a)
	eventually(t, 5*time.Second, "the removed name to stop resolving", func() bool {
		return berth(t, "run", "--rm", "--network", "berth-neta", "busybox:1.35", "nslookup", "berth-srv").code != 0
	})
	if r := berth(t, "network", "rm", "berth-netb"); r.code == 0 {
		t.Fatal("removed a network in use")
	}
}

func TestNetworkContainerMode(t *testing.T) {
	a := runDetached(t, "--name", "berth-stack", "busybox:1.35", "sh", "-c", "echo shared > /i.html; httpd -f -p 8081 -h /")
	time.Sleep(300 * time.Millisecond)
	out := must(t, "run", "--rm", "--network", "container:berth-stack", "busybox:1.35", "wget", "-q", "-O", "-", "http://127.0.0.1:8081/i.html")
	if out != "shared\n" {
		t.Fatalf("--network container: does not share the stack: %q", out)
	}
	ipA := inspect(t, a, "{{.NetworkSettings.Networks.bridge.IPAddress}}")
	if got := must(t, "run", "--rm", "--network", "container:"+a, "busybox:1.35", "sh", "-c", "ip -4 -o addr show eth0"); !strings.Contains(got, ipA+"/") {
		t.Fatalf("joined stack has %q, want %s", got, ipA)
	}
	if out := must(t, "run", "--rm", "--network", "none", "busybox:1.35", "sh", "-c", "ip -o link | wc -l"); strings.TrimSpace(out) != "1" {
		t.Fatalf("--network none has links beyond lo: %q", out)
	}
	if out := must(t, "run", "--rm", "--network", "host", "busybox:1.35", "hostname"); strings.TrimSpace(out) == "" {
		t.Fatal("--network host: no hostname")
	}
	if out := must(t, "run", "--rm", "--add-host", "db.example:10.1.2.3", "--dns", "9.9.9.9", "--hostname", "berthbox", "busybox:1.35", "sh", "-c", "cat /etc/hosts /etc/resolv.conf; hostname"); !strings.Contains(out, "10.1.2.3\tdb.example") || !strings.Contains(out, "nameserver 9.9.9.9") || !strings.HasSuffix(out, "berthbox\n") {
		t.Fatalf("--add-host/--dns/--hostname: %q", out)
	}
}

func TestManyOnOneNetwork(t *testing.T) {
	must(t, "network", "create", "berth-many")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-many") })
	const n = 50
	var wg sync.WaitGroup
	ips := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("berth-net50-%d", i)
			r := berth(t, "run", "-d", "--name", name, "--network", "berth-many", "busybox:1.35", "sleep", "120")
			if r.code != 0 {
				t.Errorf("run %s: %s", name, r.err)
				return
			}
			ips[i] = inspect(t, name, `{{(index .NetworkSettings.Networks "berth-many").IPAddress}}`)
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, ip := range ips {
		if ip == "" || seen[ip] {
			t.Errorf("container %d got address %q (duplicate or none)", i, ip)
		}
		seen[ip] = true
	}
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("berth-net50-%d", i))
	}
	must(t, append([]string{"rm", "-f"}, names...)...)
}

// kill -9 in the middle of run, then rm or a new run, leaves no orphan
// link or rule.
func TestKill9DuringRunNoNetworkOrphans(t *testing.T) {
	before := leakSnapshot()
	for i, d := range []time.Duration{10 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond} {
		name := fmt.Sprintf("berth-k9net-%d", i)
		cmd := exec.Command(berthBin, "--root", root, "--run-dir", runDir, "run", "-d", "--name", name, "-p", fmt.Sprintf("1809%d:80", i), "busybox:1.35", "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		berth(t, "rm", "-f", name)
	}
	// A new run with the same ports works.
	for i := 0; i < 4; i++ {
		must(t, "run", "--rm", "-p", fmt.Sprintf("1809%d:80", i), "busybox:1.35", "true")
	}
	time.Sleep(300 * time.Millisecond)
	if leaks := testutil.Added(before, leakSnapshot()); len(leaks) > 0 {
		t.Fatalf("left behind: %v", leaks)
	}
}

func TestPublishAllStaticIPInternalIPv6(t *testing.T) {
	// -P publishes the image's EXPOSEd ports on random host ports.
	id := runDetached(t, "-P", "web:1")
	out := strings.TrimSpace(must(t, "port", id, "80"))
	if !strings.HasPrefix(out, "0.0.0.0:") {
		t.Fatalf("port 80 after -P: %q", out)
	}
	hostPort := strings.TrimPrefix(out, "0.0.0.0:")
	eventually(t, 10*time.Second, "the random port to serve", func() bool {
		body, _ := get("http://127.0.0.1:" + hostPort + "/")
		return strings.Contains(body, "served from a container")
	})

	// --subnet/--gateway/--ip, --internal.
	must(t, "network", "create", "--subnet", "10.123.45.0/24", "--gateway", "10.123.45.254", "berth-static")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-static") })
	out = must(t, "run", "--rm", "--network", "berth-static", "--ip", "10.123.45.77", "busybox:1.35", "sh", "-c", "ip -4 -o addr show eth0; ip route")
	if !strings.Contains(out, "10.123.45.77/24") || !strings.Contains(out, "default via 10.123.45.254") {
		t.Fatalf("--ip/--gateway: %q", out)
	}
	must(t, "network", "create", "--internal", "berth-internal")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-internal") })
	if r := berth(t, "run", "--rm", "--network", "berth-internal", "busybox:1.35", "sh", "-c", "ip route | grep -c default"); strings.TrimSpace(r.out) != "0" {
		t.Fatalf("an internal network has a default route: %q", r.out)
	}

	// Dual stack: a container reaches another over IPv6 by name.
	must(t, "network", "create", "--ipv6", "--subnet", "fd00:be:47::/64", "berth-v6")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-v6") })
	srv := runDetached(t, "--network", "berth-v6", "--name", "berth-v6srv", "busybox:1.35", "sh", "-c", "echo six > /i.html; httpd -f -p 80 -h /")
	v6 := inspect(t, srv, `{{(index .NetworkSettings.Networks "berth-v6").GlobalIPv6Address}}`)
	if !strings.HasPrefix(v6, "fd00:be:47:") {
		t.Fatalf("no IPv6 address on a dual-stack network: %q", v6)
	}
	eventually(t, 10*time.Second, "IPv6 by address", func() bool {
		return berth(t, "run", "--rm", "--network", "berth-v6", "busybox:1.35", "timeout", "3", "wget", "-q", "-O", "-", "http://["+v6+"]/i.html").out == "six\n"
	})
	if out := must(t, "run", "--rm", "--network", "berth-v6", "busybox:1.35", "nslookup", "-type=AAAA", "berth-v6srv"); !strings.Contains(out, v6) {
		t.Fatalf("AAAA for berth-v6srv: %q", out)
	}
}

// A container on the default bridge that joins a user network resolves
// that network's names (its resolv.conf now names the embedded DNS), and
// /etc/hosts lists its new address.
func TestConnectUpdatesEtcFiles(t *testing.T) {
	must(t, "network", "create", "berth-late")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-late") })
	runDetached(t, "--name", "berth-late-srv", "--network", "berth-late", "busybox:1.35", "sleep", "300")
	c := runDetached(t, "busybox:1.35", "sleep", "300")
	if r := berth(t, "exec", c, "nslookup", "berth-late-srv"); r.code == 0 {
		t.Fatalf("resolved a user network's name before connecting: %s", r.out)
	}
	must(t, "network", "connect", "berth-late", c)
	ip := inspect(t, c, `{{(index .NetworkSettings.Networks "berth-late").IPAddress}}`)
	if out := must(t, "exec", c, "cat", "/etc/hosts"); !strings.Contains(out, ip+"\t") {
		t.Fatalf("/etc/hosts lacks the new address %s:\n%s", ip, out)
	}
	if out := must(t, "exec", c, "nslookup", "berth-late-srv"); !strings.Contains(out, "Address") {
		t.Fatalf("after connect: %s", out)
	}
}

func TestNetworkLsInspectPrune(t *testing.T) {
	must(t, "network", "create", "--subnet", "10.124.0.0/16", "--ip-range", "10.124.7.0/24", "--label", "team=blue", "berth-lsnet")
	must(t, "network", "create", "berth-unused")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-lsnet", "berth-unused") })
	if out := must(t, "network", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(out, "berth-lsnet bridge") || !strings.Contains(out, "bridge bridge") {
		t.Fatalf("network ls: %q", out)
	}
	id := runDetached(t, "--network", "berth-lsnet", "busybox:1.35", "sleep", "300")
	ip := inspect(t, id, `{{(index .NetworkSettings.Networks "berth-lsnet").IPAddress}}`)
	if !strings.HasPrefix(ip, "10.124.7.") {
		t.Fatalf("address %s is outside --ip-range 10.124.7.0/24", ip)
	}
	out := must(t, "network", "inspect", "--format", "{{.Labels.team}} {{range .IPAM.Config}}{{.Subnet}}{{end}} {{len .Containers}}", "berth-lsnet")
	if strings.TrimSpace(out) != "blue 10.124.0.0/16 1" {
		t.Fatalf("network inspect: %q", out)
	}
	must(t, "network", "prune", "-f")
	if r := berth(t, "network", "inspect", "berth-unused"); r.code == 0 {
		t.Fatal("network prune kept an unused network")
	}
	if r := berth(t, "network", "inspect", "berth-lsnet"); r.code != 0 {
		t.Fatal("network prune removed a network in use")
	}
}

// A port published by a container on a dual-stack network answers on the
// host's IPv6 address too.
func TestPublishedPortIPv6(t *testing.T) {
	var v6 string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() == nil && ip.IP.IsGlobalUnicast() && !strings.HasPrefix(ip.IP.String(), "fd00:be:") {
			v6 = ip.IP.String()
			break
		}
	}
	if v6 == "" {
		// No global IPv6 address here: give the host one on a dummy link.
		if out, err := exec.Command("ip", "link", "add", "berthv6dummy", "type", "dummy").CombinedOutput(); err != nil {
			t.Fatalf("add a dummy link for an IPv6 host address: %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "link", "del", "berthv6dummy").Run() })
		exec.Command("ip", "link", "set", "berthv6dummy", "up").Run()
		if out, err := exec.Command("ip", "-6", "addr", "add", "fd00:bee:1::1/64", "dev", "berthv6dummy", "nodad").CombinedOutput(); err != nil {
			t.Fatalf("add an IPv6 address: %v %s", err, out)
		}
		v6 = "fd00:bee:1::1"
	}
	must(t, "network", "create", "--ipv6", "--subnet", "fd00:be:49::/64", "berth-v6pub")
	t.Cleanup(func() { berth(t, "network", "rm", "berth-v6pub") })
	runDetached(t, "--network", "berth-v6pub", "-p", "18096:80", "busybox:1.35", "sh", "-c", "echo v6pub > /i.html; httpd -f -p 80 -h /")
	for _, url := range []string{"http://[" + v6 + "]:18096/i.html", "http://127.0.0.1:18096/i.html"} {
		eventually(t, 10*time.Second, url, func() bool {
			body, _ := get(url)
			return body == "v6pub\n"
		})
	}
}
