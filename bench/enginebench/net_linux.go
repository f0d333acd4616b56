package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const iperfImage = "berth-bench-iperf:1"

// iperfTar writes a root filesystem holding the host's iperf3 and the
// shared libraries it loads (from ldd), plus an empty /tmp (iperf3 makes
// its buffer file there). Both berth and docker import it, so both run the
// same binary.
func iperfTar(path string) error {
	bin, err := exec.LookPath("iperf3")
	if err != nil {
		return err
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", bin, err)
	}
	files := []string{bin}
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	tw := tar.NewWriter(fh)
	dirs := map[string]bool{}
	addDir := func(d string, mode int64) error {
		if dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: time.Unix(0, 0)})
	}
	if err := addDir("tmp", 0o1777); err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f) // follows symlinks: the file lands at the name the loader asks for
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(f, "/")
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			if err := addDir(strings.Join(parts[:i], "/"), 0o755); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// iperfResult parses iperf3 -J output: the receiver's rate in Gbit/s.
func iperfResult(out string) (float64, error) {
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if i := strings.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w: %.200s", err, out)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("iperf3 reported no throughput: %.200s", out)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

// path is one iperf3 client: a command that prints iperf3 -J output.
type path struct {
	name   string
	client func() *exec.Cmd
}

func (p path) measure() (float64, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		out, err := p.client().Output()
		if err == nil {
			return iperfResult(string(out))
		}
		if ee, ok := err.(*exec.ExitError); ok {
			last = fmt.Errorf("%s: %w: %s %s", p.name, err, strings.TrimSpace(string(ee.Stderr)), strings.TrimSpace(string(out)))
		} else {
			last = fmt.Errorf("%s: %w", p.name, err)
		}
		time.Sleep(500 * time.Millisecond) // the server may not listen yet
	}
	return 0, last
}

// hostIP is the first global IPv4 address of the host's default route
// device (the "host address" a published port answers on).
func hostIP() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 || strings.HasPrefix(i.Name, "berth") || strings.HasPrefix(i.Name, "veth") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String(), nil
			}
		}
	}
	return "", fmt.Errorf("no global IPv4 address on the host")
}

// bg starts a background process the bench owns and stops it (by pid) at
// cleanup.
func (v *env) bg(name string, args ...string) error {
	c := exec.Command(name, args...)
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	v.undo = append(v.undo, func() { stopProc(c, 5*time.Second) })
	return nil
}

// vethPair makes two network namespaces joined by one veth pair and starts
// an iperf3 server in the second: the ceiling for any bridged path.
func (v *env) vethPair() (string, error) {
	a, b := "berthbench-a", "berthbench-b"
	for _, ns := range []string{a, b} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			return "", err
		}
		ns := ns
		v.undo = append(v.undo, func() { _ = sh("ip", "netns", "del", ns) })
	}
	cmds := [][]string{
		{"ip", "link", "add", "berthbva", "netns", a, "type", "veth", "peer", "name", "berthbvb", "netns", b},
		{"ip", "-n", a, "addr", "add", "10.199.9.1/24", "dev", "berthbva"},
		{"ip", "-n", b, "addr", "add", "10.199.9.2/24", "dev", "berthbvb"},
		{"ip", "-n", a, "link", "set", "berthbva", "up"},
		{"ip", "-n", b, "link", "set", "berthbvb", "up"},
		{"ip", "-n", a, "link", "set", "lo", "up"},
		{"ip", "-n", b, "link", "set", "lo", "up"},
	}
	for _, c := range cmds {
		if err := sh(c[0], c[1:]...); err != nil {
			return "", err
		}
	}
	return a, v.bg("ip", "netns", "exec", b, "iperf3", "-s", "-B", "10.199.9.2")
}

func benchNet(w io.Writer, v *env, c config) error {
	if err := v.startDocker(); err != nil {
		return err
	}
	tarPath := filepath.Join(v.dir, "iperf-rootfs.tar")
	if err := iperfTar(tarPath); err != nil {
		return err
	}
	for _, e := range []*engine{v.berth, v.docker} {
		if _, err := e.run("import", tarPath, iperfImage); err != nil {
			return err
		}
	}
	hip, err := hostIP()
	if err != nil {
		return err
	}
	t := strconv.Itoa(c.iperfTime)
	iperfArgs := func(addr string, port int) []string {
		return []string{"-c", addr, "-p", strconv.Itoa(port), "-t", t, "-O", "1", "-J"}
	}

	nsA, err := v.vethPair()
	if err != nil {
		return err
	}
	lport, err := freePort()
	if err != nil {
		return err
	}
	if err := v.bg("iperf3", "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(lport)); err != nil {
		return err
	}

	// One iperf3 server container per engine on its default bridge network,
	// its port 5201 published on a free host port.
	type srv struct {
		ip   string
		port int
	}
	servers := map[string]srv{}
	for _, e := range []*engine{v.berth, v.docker} {
		hp, err := freePort()
		if err != nil {
			return err
		}
		name := "berth-bench-iperf-" + e.name
		if _, err := e.run("run", "-d", "--name", name, "-p", fmt.Sprintf("%d:5201", hp), iperfImage, "/usr/bin/iperf3", "-s"); err != nil {
			return err
		}
		ip, err := e.run("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name)
		if err != nil {
			return err
		}
		if f := strings.Fields(ip); len(f) > 0 {
			ip = f[0]
		}
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%s: container %s has no IP address (%q)", e.name, name, ip)
		}
		servers[e.name] = srv{ip, hp}
	}
	host := func(args ...string) func() *exec.Cmd {
		return func() *exec.Cmd { return exec.Command("iperf3", args...) }
	}
	inContainer := func(e *engine, addr string) func() *exec.Cmd {
		return func() *exec.Cmd {
			return e.cmd(contextBG(), append([]string{"run", "--rm", iperfImage, "/usr/bin/iperf3"}, iperfArgs(addr, 5201)...)...)
		}
	}
	bs, ds := servers["berth"], servers["docker"]
	paths := []path{
		{"veth ceiling: netns -> netns over one veth pair", func() *exec.Cmd {
			return exec.Command("ip", append([]string{"netns", "exec", nsA, "iperf3"}, iperfArgs("10.199.9.2", 5201)...)...)
		}},
		{"host loopback: 127.0.0.1 -> 127.0.0.1", host(iperfArgs("127.0.0.1", lport)...)},
		{"berth container -> container (bridge)", inContainer(v.berth, bs.ip)},
		{"berth host -> 127.0.0.1:published", host(iperfArgs("127.0.0.1", bs.port)...)},
		{"berth host -> host-ip:published", host(iperfArgs(hip, bs.port)...)},
		{"docker container -> container (bridge)", inContainer(v.docker, ds.ip)},
		{"docker host -> 127.0.0.1:published (proxy)", host(iperfArgs("127.0.0.1", ds.port)...)},
		{"docker host -> host-ip:published (DNAT)", host(iperfArgs(hip, ds.port)...)},
	}
	rates := make([][]float64, len(paths))
	for r := 0; r < c.iperfN; r++ {
		for j, p := range paths {
			g, err := p.measure()
			if err != nil {
				return err
			}
			rates[j] = append(rates[j], g)
		}
	}
	ceiling := median(rates[0])
	fmt.Fprintf(w, "\n[net] iperf3 3.x, one TCP stream, %d s per run (first second omitted), %d runs per path interleaved, Gbit/s (host address %s)\n", c.iperfTime, c.iperfN, hip)
	fmt.Fprintf(w, "  %-46s %8s %8s %8s %9s\n", "path", "median", "min", "max", "% of veth")
	for j, p := range paths {
		fmt.Fprintf(w, "  %-46s %8.2f %8.2f %8.2f %8.0f%%\n", p.name, median(rates[j]), quantile(rates[j], 0), quantile(rates[j], 1), 100*ratio(median(rates[j]), ceiling))
	}
	for _, j := range []int{2, 3, 4} {
		r := ratio(median(rates[j]), ceiling)
		fmt.Fprintf(w, "  target %s >= 90%% of the veth ceiling: %s (%.0f%%)\n", paths[j].name, verdict(r >= 0.9), 100*r)
	}
	fmt.Fprintf(w, "  berth/docker: container->container %.2f, 127.0.0.1:published %.2f, host-ip:published %.2f\n",
		ratio(median(rates[2]), median(rates[5])), ratio(median(rates[3]), median(rates[6])), ratio(median(rates[4]), median(rates[7])))
	for _, e := range []*engine{v.berth, v.docker} {
		if _, err := e.run("rm", "-f", "berth-bench-iperf-"+e.name); err != nil {
			return err
		}
	}
	return nil
}
