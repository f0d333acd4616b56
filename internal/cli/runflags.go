package cli

import (
	"bufio"
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// runFlags are `berth create` / `run`'s flags, as Docker names them.
type runFlags struct {
	detach, interactive, tty, rm, readOnly, privileged, init, noHealthcheck  bool
	publishAll                                                               bool
	name, workdir, user, entrypoint, hostname, domainname                    string
	restart, memory, memorySwap, memoryReservation, shmSize, cpusetCpus      string
	cpusetMems, stopSignal, pid, ipc, uts, cgroupns, userns, network         string
	pull, platform, healthCmd, logDriver, cgroupParent, detachKeys           string
	cpus                                                                     float64
	cpuShares, cpuQuota, cpuPeriod                                           int64
	pidsLimit                                                                int64
	oomScoreAdj, stopTimeout, healthRetries                                  int
	blkioWeight                                                              uint16
	healthInterval, healthTimeout, healthStartPeriod                         time.Duration
	env, envFile, labels, labelFile, volumes, mounts, tmpfs, capAdd, capDrop []string
	securityOpt, devices, sysctls, ulimits, groupAdd, logOpts, publish       []string
	expose, dns, dnsSearch, dnsOption, addHost, attach, networkAlias         []string
	ip, ip6, mac                                                             string
	oomKillDisable                                                           bool
}

func (f *runFlags) register(fl *pflag.FlagSet, run bool) {
	fl.SetInterspersed(false)
	fl.Bool("help", false, "Print usage") // -h is --hostname, as in Docker
	if run {
		fl.BoolVarP(&f.detach, "detach", "d", false, "Run container in background and print container ID")
		fl.StringVar(&f.detachKeys, "detach-keys", "", "Override the key sequence for detaching a container")
	}
	fl.StringSliceVarP(&f.attach, "attach", "a", nil, "Attach to STDIN, STDOUT or STDERR")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&f.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVar(&f.rm, "rm", false, "Automatically remove the container and its associated anonymous volumes when it exits")
	fl.StringVar(&f.name, "name", "", "Assign a name to the container")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&f.envFile, "env-file", nil, "Read in a file of environment variables")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "Set meta data on a container")
	fl.StringArrayVar(&f.labelFile, "label-file", nil, "Read in a line delimited file of labels")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fl.StringArrayVar(&f.groupAdd, "group-add", nil, "Add additional groups to join")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "Container host name")
	fl.StringVar(&f.domainname, "domainname", "", "Container NIS domain name")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "Bind mount a volume")
	fl.StringArrayVar(&f.mounts, "mount", nil, "Attach a filesystem mount to the container")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	fl.BoolVar(&f.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fl.StringVar(&f.restart, "restart", "no", "Restart policy to apply when a container exits")
	fl.StringVarP(&f.memory, "memory", "m", "", "Memory limit")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fl.StringVar(&f.memoryReservation, "memory-reservation", "", "Memory soft limit")
	fl.BoolVar(&f.oomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	fl.Float64Var(&f.cpus, "cpus", 0, "Number of CPUs")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&f.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fl.Int64Var(&f.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fl.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fl.StringVar(&f.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fl.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable")
	fl.StringArrayVar(&f.ulimits, "ulimit", nil, "Ulimit options")
	fl.StringVar(&f.shmSize, "shm-size", "", "Size of /dev/shm")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "Add Linux capabilities")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	fl.BoolVar(&f.privileged, "privileged", false, "Give extended privileges to this container")
	fl.StringArrayVar(&f.securityOpt, "security-opt", nil, "Security Options")
	fl.StringArrayVar(&f.devices, "device", nil, "Add a host device to the container")
	fl.StringArrayVar(&f.sysctls, "sysctl", nil, "Sysctl options")
	fl.BoolVar(&f.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "Signal to stop the container")
	fl.IntVar(&f.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	fl.StringVar(&f.healthCmd, "health-cmd", "", "Command to run to check health")
	fl.DurationVar(&f.healthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h)")
	fl.DurationVar(&f.healthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h)")
	fl.DurationVar(&f.healthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)")
	fl.IntVar(&f.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fl.BoolVar(&f.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	fl.StringVar(&f.pid, "pid", "", "PID namespace to use")
	fl.StringVar(&f.ipc, "ipc", "", "IPC mode to use")
	fl.StringVar(&f.uts, "uts", "", "UTS namespace to use")
	fl.StringVar(&f.cgroupns, "cgroupns", "", "Cgroup namespace to use (host|private)")
	fl.StringVar(&f.cgroupParent, "cgroup-parent", "", "Optional parent cgroup for the container")
	fl.StringVar(&f.userns, "userns", "", "User namespace to use")
	fl.StringVar(&f.logDriver, "log-driver", "", "Logging driver for the container (json-file or none)")
	fl.StringArrayVar(&f.logOpts, "log-opt", nil, "Log driver options")
	fl.StringVar(&f.pull, "pull", "missing", `Pull image before running ("always", "missing", "never")`)
	fl.StringVar(&f.platform, "platform", "", "Set platform if server is multi-platform capable")
	fl.StringVar(&f.network, "network", "", "Connect a container to a network")
	fl.StringVar(&f.network, "net", "", "Connect a container to a network")
	fl.MarkHidden("net")
	fl.StringArrayVar(&f.networkAlias, "network-alias", nil, "Add network-scoped alias for the container")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fl.StringArrayVar(&f.expose, "expose", nil, "Expose a port or a range of ports")
	fl.StringArrayVar(&f.dns, "dns", nil, "Set custom DNS servers")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	fl.StringArrayVar(&f.dnsOption, "dns-option", nil, "Set DNS options")
	fl.StringArrayVar(&f.addHost, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	fl.StringVar(&f.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fl.StringVar(&f.ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	fl.StringVar(&f.mac, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	fl.IntVar(&f.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
}

func parseSize(flag, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if v == "-1" {
		return -1, nil
	}
	n, err := units.RAMInBytes(v)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q: want a size such as 512m or 1g", flag, v)
	}
	return n, nil
}

// readKVFile reads an --env-file / --label-file: KEY=VALUE lines, # comments,
// and bare KEY taking the value from our environment (env files).
func readKVFile(path string, fromEnv bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, hasValue := strings.Cut(line, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: invalid variable name %q", path, n, k)
		}
		if !hasValue && fromEnv {
			if v, ok := os.LookupEnv(k); ok {
				line = k + "=" + v
			} else {
				continue
			}
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

func kvMap(list []string) map[string]string {
	m := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// toConfig turns the flags, image and command into Docker's container and
// host configuration.
func (f *runFlags) toConfig(image string, cmd []string, fl *pflag.FlagSet) (*container.Config, *container.HostConfig, error) {
	cfg := &container.Config{
		Image: image, Cmd: cmd, Tty: f.tty, OpenStdin: f.interactive,
		WorkingDir: f.workdir, User: f.user, Hostname: f.hostname, Domainname: f.domainname,
		StopSignal: f.stopSignal,
	}
	hc := &container.HostConfig{
		AutoRemove: f.rm, ReadonlyRootfs: f.readOnly, Privileged: f.privileged,
		CapAdd: f.capAdd, CapDrop: f.capDrop, SecurityOpt: f.securityOpt, GroupAdd: f.groupAdd,
		PidMode: container.PidMode(f.pid), IpcMode: container.IpcMode(f.ipc), UTSMode: container.UTSMode(f.uts),
		CgroupnsMode: container.CgroupnsMode(f.cgroupns), UsernsMode: container.UsernsMode(f.userns),
		Binds: f.volumes, OomScoreAdj: f.oomScoreAdj, ExtraHosts: f.addHost, DNSSearch: f.dnsSearch, DNSOptions: f.dnsOption,
		PublishAllPorts: f.publishAll,
	}
	if f.interactive && !f.detach {
		cfg.StdinOnce = true
		cfg.AttachStdin = true
	}
	if !f.detach {
		cfg.AttachStdout, cfg.AttachStderr = true, true
	}
	if f.oomScoreAdj < -1000 || f.oomScoreAdj > 1000 {
		return nil, nil, fmt.Errorf("invalid --oom-score-adj %d: range is -1000 to 1000", f.oomScoreAdj)
	}
	if fl.Changed("entrypoint") {
		cfg.Entrypoint = []string{f.entrypoint}
		if f.entrypoint != "" {
			cfg.Entrypoint = []string{f.entrypoint}
		}
	}
	if fl.Changed("init") {
		hc.Init = &f.init
	}
	if fl.Changed("stop-timeout") {
		t := f.stopTimeout
		cfg.StopTimeout = &t
	}
	// Environment and labels.
	for _, ef := range f.envFile {
		vars, err := readKVFile(ef, true)
		if err != nil {
			return nil, nil, fmt.Errorf("--env-file: %w", err)
		}
		cfg.Env = append(cfg.Env, vars...)
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			if v, ok := os.LookupEnv(e); ok {
				e = e + "=" + v
			} else {
				continue
			}
		}
		if strings.HasPrefix(e, "=") {
			return nil, nil, fmt.Errorf("invalid environment variable %q: empty name", e)
		}
		cfg.Env = append(cfg.Env, e)
	}
	var labels []string
	for _, lf := range f.labelFile {
		l, err := readKVFile(lf, false)
		if err != nil {
			return nil, nil, fmt.Errorf("--label-file: %w", err)
		}
		labels = append(labels, l...)
	}
	labels = append(labels, f.labels...)
	if len(labels) > 0 {
		cfg.Labels = kvMap(labels)
	}
	// Restart policy.
	if f.restart != "" {
		name, max, hasMax := strings.Cut(f.restart, ":")
		hc.RestartPolicy.Name = container.RestartPolicyMode(name)
		if hasMax {
			if name != "on-failure" {
				return nil, nil, fmt.Errorf("invalid --restart %q: a maximum retry count is only valid with on-failure", f.restart)
			}
			n, err := strconv.Atoi(max)
			if err != nil || n < 0 {
				return nil, nil, fmt.Errorf("invalid --restart %q: the retry count must be a non-negative number", f.restart)
			}
			hc.RestartPolicy.MaximumRetryCount = n
		}
	}
	// Resources.
	var err error
	if hc.Memory, err = parseSize("--memory", f.memory); err != nil {
		return nil, nil, err
	}
	if hc.MemorySwap, err = parseSize("--memory-swap", f.memorySwap); err != nil {
		return nil, nil, err
	}
	if hc.MemoryReservation, err = parseSize("--memory-reservation", f.memoryReservation); err != nil {
		return nil, nil, err
	}
	if fl.Changed("oom-kill-disable") {
		hc.OomKillDisable = &f.oomKillDisable
	}
	if f.shmSize != "" {
		if hc.ShmSize, err = parseSize("--shm-size", f.shmSize); err != nil {
			return nil, nil, err
		}
		if hc.ShmSize <= 0 {
			return nil, nil, fmt.Errorf("invalid --shm-size %q: must be positive", f.shmSize)
		}
	}
	if f.cpus != 0 {
		if f.cpus < 0 || math.IsNaN(f.cpus) {
			return nil, nil, fmt.Errorf("invalid --cpus %v: must be positive", f.cpus)
		}
		hc.NanoCPUs = int64(f.cpus * 1e9)
	}
	hc.CPUShares, hc.CPUQuota, hc.CPUPeriod = f.cpuShares, f.cpuQuota, f.cpuPeriod
	hc.CpusetCpus, hc.CpusetMems, hc.BlkioWeight = f.cpusetCpus, f.cpusetMems, f.blkioWeight
	hc.CgroupParent = f.cgroupParent
	if fl.Changed("pids-limit") {
		v := f.pidsLimit
		hc.PidsLimit = &v
	}
	for _, u := range f.ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid --ulimit %q: %w", u, err)
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	for _, d := range f.devices {
		parts := strings.Split(d, ":")
		m := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
		switch len(parts) {
		case 1:
		case 2:
			if strings.Trim(parts[1], "rwm") == "" {
				m.CgroupPermissions = parts[1]
			} else {
				m.PathInContainer = parts[1]
			}
		case 3:
			m.PathInContainer, m.CgroupPermissions = parts[1], parts[2]
		default:
			return nil, nil, fmt.Errorf("invalid --device %q: want HOST[:CONTAINER[:PERMISSIONS]]", d)
		}
		hc.Devices = append(hc.Devices, m)
	}
	if len(f.sysctls) > 0 {
		hc.Sysctls = map[string]string{}
		for _, s := range f.sysctls {
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return nil, nil, fmt.Errorf("invalid --sysctl %q: want KEY=VALUE", s)
			}
			hc.Sysctls[k] = v
		}
	}
	// Mounts.
	for _, m := range f.mounts {
		mm, err := parseMount(m)
		if err != nil {
			return nil, nil, err
		}
		hc.Mounts = append(hc.Mounts, mm)
	}
	if len(f.tmpfs) > 0 {
		hc.Tmpfs = map[string]string{}
		for _, t := range f.tmpfs {
			dst, opts, _ := strings.Cut(t, ":")
			hc.Tmpfs[dst] = opts
		}
	}
	// Logging.
	hc.LogConfig.Type = f.logDriver
	if len(f.logOpts) > 0 {
		hc.LogConfig.Config = map[string]string{}
		for _, o := range f.logOpts {
			k, v, ok := strings.Cut(o, "=")
			if !ok {
				return nil, nil, fmt.Errorf("invalid --log-opt %q: want KEY=VALUE", o)
			}
			hc.LogConfig.Config[k] = v
		}
	}
	// Health.
	if f.noHealthcheck {
		if f.healthCmd != "" {
			return nil, nil, fmt.Errorf("--no-healthcheck conflicts with --health-* options")
		}
		cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	} else if f.healthCmd != "" || f.healthInterval != 0 || f.healthTimeout != 0 || f.healthStartPeriod != 0 || f.healthRetries != 0 {
		h := &container.HealthConfig{Interval: f.healthInterval, Timeout: f.healthTimeout, StartPeriod: f.healthStartPeriod, Retries: f.healthRetries}
		if f.healthCmd != "" {
			h.Test = []string{"CMD-SHELL", f.healthCmd}
		}
		for _, d := range []time.Duration{f.healthInterval, f.healthTimeout, f.healthStartPeriod} {
			if d < 0 || (d > 0 && d < time.Millisecond) {
				return nil, nil, fmt.Errorf("health check durations must be at least 1ms")
			}
		}
		if f.healthRetries < 0 {
			return nil, nil, fmt.Errorf("--health-retries cannot be negative")
		}
		cfg.Healthcheck = h
	}
	// Network.
	hc.NetworkMode = container.NetworkMode(f.network)
	for _, d := range f.dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid --dns %q: not an IP address", d)
		}
		hc.DNS = append(hc.DNS, a)
	}
	for _, h := range f.addHost {
		host, ip, ok := strings.Cut(h, ":")
		if !ok {
			host, ip, ok = strings.Cut(h, "=")
		}
		if _, err := netip.ParseAddr(strings.Trim(ip, "[]")); !ok || host == "" || (err != nil && ip != "host-gateway") {
			return nil, nil, fmt.Errorf("invalid --add-host %q: want HOST:IP", h)
		}
	}
	for _, e := range f.expose {
		p, err := network.ParsePort(withProto(e))
		if err != nil {
			return nil, nil, fmt.Errorf("invalid --expose %q: %w", e, err)
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	if len(f.publish) > 0 {
		pm, exposed, err := parsePublish(f.publish)
		if err != nil {
			return nil, nil, err
		}
		hc.PortBindings = pm
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
		}
		for p := range exposed {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	return cfg, hc, nil
}

func withProto(p string) string {
	if !strings.Contains(p, "/") {
		return p + "/tcp"
	}
	return p
}

// parsePublish parses -p [ip:][hostPort:]containerPort[/proto], ranges
// included.
func parsePublish(specs []string) (network.PortMap, network.PortSet, error) {
	pm := network.PortMap{}
	set := network.PortSet{}
	for _, s := range specs {
		rest, proto, _ := strings.Cut(s, "/")
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, nil, fmt.Errorf("invalid -p %q: protocol %q (want tcp, udp or sctp)", s, proto)
		}
		var ip, hostPart, ctrPart string
		if i := strings.LastIndex(rest, ":"); i >= 0 {
			ctrPart = rest[i+1:]
			before := rest[:i]
			if j := strings.LastIndex(before, ":"); j >= 0 {
				ip, hostPart = strings.Trim(before[:j], "[]"), before[j+1:]
			} else {
				hostPart = before
			}
		} else {
			ctrPart = rest
		}
		var hostIP netip.Addr
		if ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, nil, fmt.Errorf("invalid -p %q: %q is not an IP address", s, ip)
			}
			hostIP = a
		}
		cLo, cHi, err := portRange(ctrPart)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid -p %q: container port: %w", s, err)
		}
		hLo, hHi := 0, 0
		if hostPart != "" {
			if hLo, hHi, err = portRange(hostPart); err != nil {
				return nil, nil, fmt.Errorf("invalid -p %q: host port: %w", s, err)
			}
			if hHi-hLo != cHi-cLo && hHi-hLo != 0 {
				return nil, nil, fmt.Errorf("invalid -p %q: host and container port ranges differ in size", s)
			}
		}
		for i := 0; i <= cHi-cLo; i++ {
			p, err := network.ParsePort(fmt.Sprintf("%d/%s", cLo+i, proto))
			if err != nil {
				return nil, nil, err
			}
			set[p] = struct{}{}
			hp := ""
			switch {
			case hostPart == "":
			case hHi == hLo:
				hp = strconv.Itoa(hLo)
			default:
				hp = strconv.Itoa(hLo + i)
			}
			pm[p] = append(pm[p], network.PortBinding{HostIP: hostIP, HostPort: hp})
		}
	}
	return pm, set, nil
}

func portRange(s string) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := strconv.Atoi(lo)
	if err != nil || l < 1 || l > 65535 {
		return 0, 0, fmt.Errorf("%q is not a port number (1-65535)", lo)
	}
	h := l
	if isRange {
		if h, err = strconv.Atoi(hi); err != nil || h < l || h > 65535 {
			return 0, 0, fmt.Errorf("%q is not a valid port range", s)
		}
	}
	return l, h, nil
}

// parseMount parses --mount type=...,source=...,target=...[,readonly][,...].
func parseMount(s string) (mount.Mount, error) {
	m := mount.Mount{Type: mount.TypeVolume}
	for _, field := range strings.Split(s, ",") {
		k, v, hasV := strings.Cut(field, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		switch k {
		case "type":
			m.Type = mount.Type(v)
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = !hasV || v == "true" || v == "1"
		case "bind-propagation":
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(v)
		case "volume-nocopy":
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.NoCopy = !hasV || v == "true" || v == "1"
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return m, fmt.Errorf("invalid --mount %q: tmpfs-size %q", s, v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("invalid --mount %q: tmpfs-mode %q is not octal", s, v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = os.FileMode(n)
		default:
			return m, fmt.Errorf("invalid --mount %q: unknown field %q", s, k)
		}
	}
	if m.Target == "" {
		return m, fmt.Errorf("invalid --mount %q: target is required", s)
	}
	return m, nil
}
