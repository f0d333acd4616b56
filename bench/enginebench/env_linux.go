package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// engine is one container engine's command line: berth, docker or podman.
type engine struct {
	name string
	bin  string
	args []string // global flags
	env  []string // added to the environment
}

// cmd builds the engine's command with its global flags.
func (e *engine) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, e.bin, append(clone(e.args), args...)...)
	c.Env = append(os.Environ(), e.env...)
	return c
}

func clone(s []string) []string { return append([]string(nil), s...) }

// run runs the engine's command and returns its trimmed stdout; an error
// carries its stderr.
func (e *engine) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	var out, stderr bytes.Buffer
	c.Stdout, c.Stderr = &out, &stderr
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", e.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// timed runs the command with stdin from /dev/null and output discarded
// (stderr kept for the error) and returns its wall time, fork to wait.
func (e *engine) timed(args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	t0 := time.Now()
	err := c.Run()
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("%s %s: %w: %s", e.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return d, nil
}

// env is everything the bench starts on the host; close undoes it.
type env struct {
	dir      string // the berth-bench-* temporary directory
	shared   string // ../shared/images
	berthBin string
	berth    *engine
	docker   *engine
	podman   *engine

	dockerd  *exec.Cmd
	dockerBr string
	registry *exec.Cmd
	regAddr  string

	busyboxLoaded bool
	webPushed     bool
	unknownExits  int
	hostBefore    map[string]bool            // hostPaths that existed before
	keys          [2]string                  // root's keyring quota (dockerd raises it)
	rules         map[string]map[string]bool // iptables -S lines before we started peers, by "cmd table"
	undo          []func()
	verbose       bool
}

const (
	berthBridge  = "berthbench0"
	berthTable   = "berth_bench"
	dockerBridge = "berthbenchdk0"
	dockerNet    = "10.199.1.1/24"
	podmanBridge = "berthbenchpd0"
	podmanSubnet = "10.199.2.0/24"
	podmanGW     = "10.199.2.1"
)

func (v *env) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "enginebench: "+format+"\n", a...)
}

// newEnv makes the temporary directory and berth's engine. The peers are
// started on demand (startDocker, startPodman, startRegistry).
func newEnv(berthBin, shared string) (*env, error) {
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	v := &env{dir: dir, shared: shared, berthBin: berthBin}
	v.berth = v.berthAt(filepath.Join(dir, "berth"))
	v.snapshotRules()
	v.snapshotHost()
	return v, nil
}

// berthAt is berth with its own root and run directory under dir.
func (v *env) berthAt(dir string) *engine {
	return &engine{
		name: "berth", bin: v.berthBin,
		args: []string{"--root", filepath.Join(dir, "root"), "--run-dir", filepath.Join(dir, "run")},
		env:  []string{"BERTH_BRIDGE=" + berthBridge, "BERTH_NFT_TABLE=" + berthTable},
	}
}

// resetBerth removes everything a berth root made (containers, images,
// networks, its bridge and nft table) and then the directory.
func (v *env) resetBerth(e *engine, dir string) {
	if _, err := e.run("system", "reset", "--force"); err != nil {
		v.logf("cleanup: %v", err)
	}
	unmountUnder(dir)
	if err := os.RemoveAll(dir); err != nil {
		v.logf("cleanup: %v", err)
	}
}

// close stops every peer and removes everything, in reverse order.
func (v *env) close() {
	for i := len(v.undo) - 1; i >= 0; i-- {
		v.undo[i]()
	}
	v.resetBerth(v.berth, filepath.Join(v.dir, "berth"))
	v.restoreRules()
	v.restoreHost()
	unmountUnder(v.dir)
	if err := os.RemoveAll(v.dir); err != nil {
		v.logf("cleanup: %v", err)
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mps[i], syscall.MNT_DETACH)
	}
}

// stopProc sends SIGTERM to a process the bench started and waits for it,
// then SIGKILL after timeout.
func stopProc(c *exec.Cmd, timeout time.Duration) {
	if c == nil || c.Process == nil {
		return
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = c.Process.Kill()
		<-done
	}
}

// waitFor polls ok until it is true or timeout passes.
func waitFor(timeout time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ok()
}

// freePort asks the kernel for an unused TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startDocker starts a private dockerd (its own data root, exec root,
// socket and pid file under the temp dir, its own containerd) on a bridge
// named berthbenchdk0, with the local registry marked insecure.
func (v *env) startDocker() error {
	if v.docker != nil {
		return nil
	}
	d := filepath.Join(v.dir, "docker")
	for _, s := range []string{"data", "exec", "config"} {
		if err := os.MkdirAll(filepath.Join(d, s), 0o700); err != nil {
			return err
		}
	}
	if err := sh("ip", "link", "add", dockerBridge, "type", "bridge"); err != nil {
		return err
	}
	v.undo = append(v.undo, func() { _ = sh("ip", "link", "del", dockerBridge) })
	if err := sh("ip", "addr", "add", dockerNet, "dev", dockerBridge); err != nil {
		return err
	}
	if err := sh("ip", "link", "set", dockerBridge, "up"); err != nil {
		return err
	}
	sock := filepath.Join(d, "docker.sock")
	args := []string{
		"--data-root", filepath.Join(d, "data"), "--exec-root", filepath.Join(d, "exec"),
		"--pidfile", filepath.Join(d, "docker.pid"), "-H", "unix://" + sock,
		"--bridge", dockerBridge, "--log-level", "warn",
	}
	if v.regAddr != "" {
		args = append(args, "--insecure-registry", v.regAddr)
	}
	c := exec.Command("dockerd", args...)
	logf, err := os.Create(filepath.Join(d, "dockerd.log"))
	if err != nil {
		return err
	}
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	v.dockerd = c
	v.docker = &engine{name: "docker", bin: "docker", args: []string{"-H", "unix://" + sock},
		env: []string{"DOCKER_CONFIG=" + filepath.Join(d, "config")}}
	v.undo = append(v.undo, func() {
		// Containers first (dockerd would stop them, slowly, one by one).
		if ids, err := v.docker.run("ps", "-aq"); err == nil && ids != "" {
			_, _ = v.docker.run(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		stopProc(v.dockerd, 30*time.Second)
		logf.Close()
		unmountUnder(d)
	})
	if !waitFor(60*time.Second, func() bool { _, err := v.docker.run("version"); return err == nil }) {
		return fmt.Errorf("dockerd did not answer on %s (log: %s)", sock, filepath.Join(d, "dockerd.log"))
	}
	return nil
}

// startPodman writes a containers.conf that keeps podman's state under the
// temp dir and gives it a CNI default network on a bridge named
// berthbenchpd0 (host-local IPAM state under the temp dir too).
func (v *env) startPodman() error {
	if v.podman != nil {
		return nil
	}
	d := filepath.Join(v.dir, "podman")
	for _, s := range []string{"root", "run", "tmp", "cni", "ipam"} {
		if err := os.MkdirAll(filepath.Join(d, s), 0o700); err != nil {
			return err
		}
	}
	// As root podman gives containers RLIMIT_NOFILE and RLIMIT_NPROC of
	// 1048576; without CAP_SYS_RESOURCE (a sandboxed host) crun cannot raise
	// them, so podman's containers get the limits the bench itself holds,
	// as Docker's do (nproc at most 32768: podman 4.3 lowers its own to that).
	var nofile, nproc syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	_ = syscall.Getrlimit(6 /* RLIMIT_NPROC */, &nproc)
	np := min(nproc.Max, 32768)
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]

[network]
network_backend = "cni"
network_config_dir = %q
default_network = "berthbench"

[engine]
# crun refuses a cgroup v1/v2 hybrid host; runc is Debian's other runtime.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`, nofile.Max, nofile.Max, np, np, filepath.Join(d, "cni"))
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "berthbench", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": %q, "routes": [{"dst": "0.0.0.0/0"}],
            "ranges": [[{"subnet": %q, "gateway": %q}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall"},
  {"type": "tuning"}
]}
`, podmanBridge, filepath.Join(d, "ipam"), podmanSubnet, podmanGW)
	if err := os.WriteFile(filepath.Join(d, "containers.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "cni", "berthbench.conflist"), []byte(cni), 0o644); err != nil {
		return err
	}
	v.podman = &engine{name: "podman", bin: "podman",
		args: []string{"--root", filepath.Join(d, "root"), "--runroot", filepath.Join(d, "run"), "--tmpdir", filepath.Join(d, "tmp")},
		env:  []string{"CONTAINERS_CONF=" + filepath.Join(d, "containers.conf"), "TMPDIR=" + filepath.Join(d, "tmp")}}
	v.undo = append(v.undo, func() {
		if _, err := v.podman.run("rm", "-af", "-t", "0"); err != nil {
			v.logf("cleanup: %v", err)
		}
		if _, err := v.podman.run("system", "reset", "--force"); err != nil {
			v.logf("cleanup: %v", err)
		}
		_ = sh("ip", "link", "del", podmanBridge)
		unmountUnder(d)
	})
	if _, err := v.podman.run("info"); err != nil {
		return err
	}
	return nil
}

// startRegistry starts Debian's docker-registry on a free loopback port with
// its storage under the temp dir.
func (v *env) startRegistry() error {
	if v.registry != nil {
		return nil
	}
	d := filepath.Join(v.dir, "registry")
	if err := os.MkdirAll(filepath.Join(d, "data"), 0o700); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	v.regAddr = "127.0.0.1:" + strconv.Itoa(port)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(d, "data"), v.regAddr)
	cf := filepath.Join(d, "config.yml")
	if err := os.WriteFile(cf, []byte(cfg), 0o644); err != nil {
		return err
	}
	c := exec.Command("docker-registry", "serve", cf)
	logf, err := os.Create(filepath.Join(d, "registry.log"))
	if err != nil {
		return err
	}
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		return fmt.Errorf("start docker-registry: %w", err)
	}
	v.registry = c
	v.undo = append(v.undo, func() { stopProc(c, 10*time.Second); logf.Close() })
	if !waitFor(20*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", v.regAddr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}) {
		return errors.New("docker-registry did not listen on " + v.regAddr)
	}
	return nil
}

// iptables bookkeeping: dockerd and the CNI plugins add chains and rules to
// the shared iptables tables and leave some behind when they stop. The bench
// records every table's rules before it starts them and deletes what was
// added afterwards.
var ruleTables = []string{"filter", "nat", "mangle", "raw"}

func listRules(cmd, table string) []string {
	out, err := exec.Command(cmd, "-w", "-t", table, "-S").Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func (v *env) snapshotRules() {
	v.rules = map[string]map[string]bool{}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, t := range ruleTables {
			m := map[string]bool{}
			for _, l := range listRules(cmd, t) {
				m[l] = true
			}
			v.rules[cmd+" "+t] = m
		}
	}
}

func (v *env) restoreRules() {
	if v.docker == nil && v.podman == nil {
		return
	}
	if other := otherDockerd(v.dockerd); other != 0 {
		v.logf("another dockerd (pid %d) runs on this host: leaving iptables rules as they are", other)
		return
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		for _, t := range ruleTables {
			before := v.rules[cmd+" "+t]
			var chains []string
			for _, l := range listRules(cmd, t) {
				if before[l] || l == "" {
					continue
				}
				f := splitRule(l)
				switch f[0] {
				case "-A":
					_ = exec.Command(cmd, append([]string{"-w", "-t", t, "-D"}, f[1:]...)...).Run()
				case "-N":
					chains = append(chains, f[1])
				}
			}
			for _, c := range chains {
				_ = exec.Command(cmd, "-w", "-t", t, "-F", c).Run()
			}
			for _, c := range chains {
				if err := exec.Command(cmd, "-w", "-t", t, "-X", c).Run(); err != nil {
					v.logf("cleanup: %s -t %s -X %s: %v", cmd, t, c, err)
				}
			}
		}
	}
}

// otherDockerd returns the pid of a dockerd that is not ours, or 0.
func otherDockerd(ours *exec.Cmd) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || (ours != nil && ours.Process != nil && pid == ours.Process.Pid) {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(comm)) == "dockerd" {
			return pid
		}
	}
	return 0
}

// splitRule splits an iptables -S line into arguments (double quotes with
// backslash escapes, as iptables prints comments).
func splitRule(l string) []string {
	var out []string
	var cur strings.Builder
	inq, have := false, false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c == '\\' && inq && i+1 < len(l):
			i++
			cur.WriteByte(l[i])
		case c == '"':
			inq, have = !inq, true
		case c == ' ' && !inq:
			if have || cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
		}
	}
	if have || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// memOf reads a process's RSS (VmRSS) and PSS (smaps_rollup) in KiB.
func memOf(pid int) (rss, pss int, err error) {
	rss, err = procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
	if err != nil {
		return 0, 0, err
	}
	pss, err = procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	return rss, pss, err
}

func procField(path, key string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), key) {
			fs := strings.Fields(s.Text())
			return strconv.Atoi(fs[1])
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

func ppidOf(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	return strconv.Atoi(f[1])
}

func commOf(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(data))
}

// pidsByComm lists processes whose comm is one of names.
func pidsByComm(names ...string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c := commOf(pid)
		for _, n := range names {
			if c == n {
				out = append(out, pid)
			}
		}
	}
	return out
}

func contextBG() context.Context { return context.Background() }

// Host paths the peers make whatever their flags say: dockerd 20.10
// /run/docker (plugin discovery), containerd's shims /run/containerd,
// podman's runc state /run/runc, and podman 4.3's blob-info cache under
// /var/lib/containers. Removed at the end when new (directories only when
// empty).
var hostPaths = []string{"/run/docker", "/run/containerd", "/run/runc",
	"/var/lib/containers/cache/blob-info-cache-v1.boltdb", "/var/lib/containers/cache", "/var/lib/containers"}

const (
	maxKeys  = "/proc/sys/kernel/keys/root_maxkeys"
	maxBytes = "/proc/sys/kernel/keys/root_maxbytes"
)

func (v *env) snapshotHost() {
	v.hostBefore = map[string]bool{}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			v.hostBefore[p] = true
		}
	}
	k, _ := os.ReadFile(maxKeys)
	b, _ := os.ReadFile(maxBytes)
	v.keys = [2]string{string(k), string(b)}
}

func (v *env) restoreHost() {
	for _, p := range hostPaths {
		if v.hostBefore[p] {
			continue
		}
		if strings.HasSuffix(p, ".boltdb") {
			_ = os.Remove(p)
			continue
		}
		removeEmptyDirs(p)
	}
	if v.keys[0] != "" {
		_ = os.WriteFile(maxKeys, []byte(v.keys[0]), 0o644)
		_ = os.WriteFile(maxBytes, []byte(v.keys[1]), 0o644)
	}
}

// removeEmptyDirs removes dir and the directories under it, deepest first,
// as long as they are empty.
func removeEmptyDirs(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() {
			removeEmptyDirs(filepath.Join(dir, e.Name()))
		}
	}
	_ = syscall.Rmdir(dir)
}
