package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
	"github.com/berth-project/berth/network/nft"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Child modes: the test binary re-executes itself to act as a separate berth
// process (a DNS server, or an Attach killed at a chosen step).
const childEnv = "BERTH_NETWORK_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "dns":
		mgr, err := NewWithOptions(os.Getenv("BERTH_ROOT"), os.Getenv("BERTH_RUN"), childOptions())
		if err == nil {
			err = mgr.RunDNS(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "attach":
		step := os.Getenv("BERTH_KILL_AT")
		testHook = func(s string) {
			if s == step {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
		mgr, err := NewWithOptions(os.Getenv("BERTH_ROOT"), os.Getenv("BERTH_RUN"), childOptions())
		if err == nil {
			_, err = mgr.Attach(context.Background(), os.Getenv("BERTH_CID"), os.Getenv("BERTH_NET"),
				os.Getenv("BERTH_SANDBOX"), EndpointOptions{Name: "crash",
					Ports: []PortMapping{{HostPort: 0, ContainerPort: 80}}})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(2)
}

func childOptions() Options {
	o := Options{DefaultBridge: os.Getenv("BERTH_BRIDGE"), Table: os.Getenv("BERTH_TABLE"), DNSIdleExit: 500 * time.Millisecond}
	if u := os.Getenv("BERTH_UPSTREAMS"); u != "" {
		o.Upstreams = strings.Split(u, ",")
	}
	return o
}

func rnd(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// env is one test's berth root: its own database, run dir, default bridge
// and nftables table, all removed (and checked removed) at the end.
type env struct {
	t      *testing.T
	root   string
	run    string
	opts   Options
	m      *Manager
	tag    string
	childs []child
}

// child is a process started by a test, reaped by wait.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start starts cmd and registers it to be killed at cleanup.
func (e *env) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	c := child{cmd, make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	e.childs = append(e.childs, c)
	return nil
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	testutil.RequireRoot(t, "it makes bridges, veths and nftables tables")
	id := rnd(3)
	e := &env{t: t, root: t.TempDir(), run: t.TempDir(),
		opts: Options{DefaultBridge: "berthT" + id, Table: "berth_t" + id, DNSIdleExit: 500 * time.Millisecond}}
	if mod != nil {
		mod(&e.opts)
	}
	m, err := NewWithOptions(e.root, e.run, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	if e.tag, err = m.Tag(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) cleanup() {
	t := e.t
	ctx := context.Background()
	for _, c := range e.childs {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	ents, _ := os.ReadDir(e.run + "/netns")
	for _, d := range ents {
		if err := e.m.RemoveSandbox(strings.TrimPrefix(d.Name(), "berth-")); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if err := e.m.Destroy(ctx); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if !e.waitLinks(0) {
		left := e.links()
		t.Errorf("links left behind: %v", left)
	}
	if ok, _ := nft.Exists(e.opts.Table); ok {
		t.Errorf("nftables table %s left behind", e.opts.Table)
	}
	if ents, _ := os.ReadDir(e.run + "/netns"); len(ents) > 0 {
		t.Errorf("sandbox files left behind: %v", ents)
		for _, d := range ents {
			syscall.Unmount(e.run+"/netns/"+d.Name(), syscall.MNT_DETACH)
		}
	}
	// Whatever a failure left, do not let it outlive the test.
	for _, name := range e.links() {
		if l, err := netlink.LinkByName(name); err == nil {
			netlink.LinkDel(l)
		}
	}
	nft.Delete(e.opts.Table)
}

// links lists the host links created by this root.
func (e *env) links() []string {
	ls, err := linkList(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		if name := l.Attrs().Name; strings.HasPrefix(name, "berth"+e.tag) || name == e.opts.DefaultBridge {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

func (e *env) sandbox(name string) (string, string) {
	e.t.Helper()
	id := name + rnd(8)
	p, err := e.m.CreateSandbox(id)
	if err != nil {
		e.t.Fatal(err)
	}
	return id, p
}

func (e *env) rules() int {
	n, err := nft.CountRules(e.opts.Table)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// inNS runs fn on a thread inside the network namespace at path. Sockets
// created by fn stay in that namespace.
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err) // thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// serve starts a TCP server in a sandbox that greets with msg and the
// address it sees the client at.
func serve(t *testing.T, path, addr, msg string) {
	t.Helper()
	var l net.Listener
	err := inNS(path, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", msg, c.RemoteAddr())
			c.Close()
		}
	}()
}

// fetch connects to addr (from the sandbox at path, or the host if path is
// "") and returns what the server says.
func fetch(path, addr string) (string, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 700*time.Millisecond)
		return err
	}
	var err error
	if path == "" {
		err = dial()
	} else {
		err = inNS(path, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// hostAddr returns a global IPv4 address of the host (not on a berth link).
func hostAddr(t *testing.T) net.IP {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		l, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil || strings.HasPrefix(l.Attrs().Name, "berth") || a.IP.IsLoopback() {
			continue
		}
		if l.Attrs().Flags&net.FlagUp != 0 {
			return a.IP
		}
	}
	t.Fatal("host has no non-loopback IPv4 address")
	return nil
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func netlinkNs(path string) (netns.NsHandle, error) { return netns.GetFromPath(path) }

// waitLinks waits until this root has n links: veths of unpinned sandboxes
// disappear when the kernel has torn their namespace down, asynchronously.
func (e *env) waitLinks(n int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for len(e.links()) != n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
