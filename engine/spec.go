package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/caps"
	"github.com/berth-project/berth/runtime/profile"
	"github.com/berth-project/berth/runtime/seccomp"
)

// specInput is what the spec needs beyond the container record: things
// found at start time (resolved user, paths, other containers'
// namespaces).
type specInput struct {
	Rootfs       string
	HostsPath    string // "" to leave /etc/hosts alone
	HostnamePath string
	ResolvPath   string
	// Namespace paths by type; a missing type gets a new namespace, and
	// hostNS lists the types shared with the host (none made).
	NSPaths map[specs.LinuxNamespaceType]string
	HostNS  map[specs.LinuxNamespaceType]bool
	User    resolvedUser
	Mounts  []MountPoint
	// CgroupNSPrivate: make a cgroup namespace (Docker's default on v2).
	CgroupNSPrivate bool
	InitPath        string // --init: the init binary to bind-mount
}

type resolvedUser struct {
	UID, GID   uint32
	Additional []uint32
	Home       string
}

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// initDest is where --init's binary appears in the container.
const initDest = "/sbin/berth-init"

// buildSpec makes the OCI spec of a container from its Docker-shaped
// configuration, starting from berth's default profile (Docker's
// confinement).
func buildSpec(c *Container, in *specInput) (*specs.Spec, error) {
	cfg, hc := c.Config, c.HostConfig
	s := profile.Default()
	s.Root = &specs.Root{Path: in.Rootfs, Readonly: hc.ReadonlyRootfs}
	s.Hostname = cfg.Hostname
	s.Domainname = cfg.Domainname

	// Process.
	args := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: the image has no CMD or ENTRYPOINT and none was given")
	}
	if hc.Init != nil && *hc.Init {
		args = append([]string{initDest, "--"}, args...)
	}
	p := s.Process
	p.Args = args
	p.Terminal = cfg.Tty
	p.Cwd = cfg.WorkingDir
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	p.Env = containerEnv(cfg, in.User.Home)
	p.User = specs.User{UID: in.User.UID, GID: in.User.GID, AdditionalGids: in.User.Additional}
	p.NoNewPrivileges = false // Docker's default; --security-opt no-new-privileges sets it
	p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile(), Soft: nofile()}}
	for _, u := range hc.Ulimits {
		name := "RLIMIT_" + strings.ToUpper(u.Name)
		p.Rlimits = slices.DeleteFunc(p.Rlimits, func(r specs.POSIXRlimit) bool { return r.Type == name })
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: name, Soft: uint64(u.Soft), Hard: uint64(u.Hard)})
	}
	if hc.OomScoreAdj != 0 {
		v := hc.OomScoreAdj
		p.OOMScoreAdj = &v
	}

	// Capabilities.
	capSet, err := capabilities(hc)
	if err != nil {
		return nil, err
	}
	p.Capabilities = &specs.LinuxCapabilities{Bounding: capSet, Effective: capSet, Permitted: capSet}

	// Mounts: the defaults, then /dev/shm size, then the container's own.
	for i := range s.Mounts {
		m := &s.Mounts[i]
		switch m.Destination {
		case "/dev/shm":
			size := hc.ShmSize
			if size == 0 {
				size = 64 << 20
			}
			m.Options = []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(size, 10)}
		case "/sys", "/sys/fs/cgroup":
			if hc.Privileged {
				m.Options = slices.DeleteFunc(m.Options, func(o string) bool { return o == "ro" })
				m.Options = append(m.Options, "rw")
			}
		}
	}
	if hc.IpcMode.IsHost() || hc.IpcMode.IsContainer() {
		// The shm of the shared ipc namespace: Docker bind-mounts the
		// other container's /dev/shm; with host, the host's.
		s.Mounts = slices.DeleteFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" || m.Destination == "/dev/mqueue" })
		if hc.IpcMode.IsHost() {
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "nosuid", "noexec", "nodev"}},
				specs.Mount{Destination: "/dev/mqueue", Type: "bind", Source: "/dev/mqueue", Options: []string{"rbind", "nosuid", "noexec", "nodev"}})
		}
	}
	for _, f := range []struct{ src, dst string }{{in.HostsPath, "/etc/hosts"}, {in.HostnamePath, "/etc/hostname"}, {in.ResolvPath, "/etc/resolv.conf"}} {
		if f.src != "" && !hasMount(in.Mounts, f.dst) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"rbind", "rprivate"}})
		}
	}
	if in.InitPath != "" {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: initDest, Type: "bind", Source: in.InitPath, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	for _, m := range in.Mounts {
		s.Mounts = slices.DeleteFunc(s.Mounts, func(x specs.Mount) bool { return x.Destination == m.Destination })
		switch m.Type {
		case "tmpfs":
			opts := append([]string{"nosuid", "nodev", "noexec"}, m.Options...)
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
		default:
			opts := []string{"rbind"}
			if !m.RW {
				opts = append(opts, "ro")
			}
			opts = append(opts, m.Options...)
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		}
	}
	sortMounts(s.Mounts)

	// Namespaces.
	l := s.Linux
	var nss []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.CgroupNamespace} {
		if in.HostNS[t] {
			continue
		}
		if t == specs.CgroupNamespace && !in.CgroupNSPrivate {
			continue
		}
		nss = append(nss, specs.LinuxNamespace{Type: t, Path: in.NSPaths[t]})
	}
	if c.IDMap != nil {
		nss = append(nss, specs.LinuxNamespace{Type: specs.UserNamespace})
		l.UIDMappings, l.GIDMappings = c.IDMap.UIDs, c.IDMap.GIDs
	}
	l.Namespaces = nss
	if in.HostNS[specs.UTSNamespace] {
		s.Hostname, s.Domainname = "", ""
	}
	if in.HostNS[specs.NetworkNamespace] {
		// sysfs needs the network namespace's owner; the host's is bound.
		for i := range s.Mounts {
			if s.Mounts[i].Destination == "/sys" {
				s.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
			}
		}
	}

	// Cgroup and resources.
	parent := hc.CgroupParent
	if parent == "" {
		parent = DefaultCgroupParent()
	}
	l.CgroupsPath = filepath.Join(parent, c.ID)
	res, err := resources(hc)
	if err != nil {
		return nil, err
	}
	res.Devices = l.Resources.Devices
	l.Resources = res
	if len(hc.Sysctls) > 0 {
		l.Sysctl = map[string]string{}
		for k, v := range hc.Sysctls {
			if c.IDMap != nil && strings.HasPrefix(k, "net.") {
				continue // set by the engine (netSysctls)
			}
			l.Sysctl[k] = v
		}
	}

	// Devices.
	if hc.Privileged {
		devs, err := hostDevices()
		if err != nil {
			return nil, err
		}
		l.Devices = devs
		l.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		l.MaskedPaths, l.ReadonlyPaths = nil, nil
	}
	for _, d := range hc.Devices {
		dev, rule, err := deviceMapping(d)
		if err != nil {
			return nil, err
		}
		l.Devices = append(l.Devices, dev)
		l.Resources.Devices = append(l.Resources.Devices, rule)
	}

	// Security options.
	l.Seccomp = nil
	if !hc.Privileged {
		l.Seccomp = seccomp.DefaultProfileFor(capSet)
	}
	for _, opt := range hc.SecurityOpt {
		k, v, _ := strings.Cut(opt, "=")
		if k == opt && strings.Contains(opt, ":") { // the old k:v form
			k, v, _ = strings.Cut(opt, ":")
		}
		switch k {
		case "no-new-privileges":
			p.NoNewPrivileges = v == "" || v == "true"
		case "seccomp":
			switch v {
			case "unconfined":
				l.Seccomp = nil
			case "builtin", "":
				l.Seccomp = seccomp.DefaultProfileFor(capSet)
			default:
				data, err := os.ReadFile(v)
				if err != nil {
					return nil, fmt.Errorf("--security-opt seccomp=%s: %w", v, err)
				}
				if l.Seccomp, err = seccomp.LoadDockerProfile(data, capSet); err != nil {
					return nil, fmt.Errorf("--security-opt seccomp=%s: %w", v, err)
				}
			}
		case "apparmor":
			if v != "unconfined" {
				if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
					return nil, fmt.Errorf("--security-opt apparmor=%s: AppArmor is not enabled on this host", v)
				}
				p.ApparmorProfile = v
			}
		case "label":
			if v == "disable" || v == "" {
				break
			}
			if _, err := os.Stat("/sys/fs/selinux/enforce"); err != nil {
				return nil, fmt.Errorf("--security-opt label=%s: SELinux is not enabled on this host", v)
			}
			return nil, fmt.Errorf("--security-opt label=%s: SELinux labels are not supported by berth yet", v)
		case "systempaths":
			if v == "unconfined" {
				l.MaskedPaths, l.ReadonlyPaths = nil, nil
			}
		default:
			return nil, fmt.Errorf("invalid --security-opt %q: want seccomp=, apparmor=, label=, no-new-privileges or systempaths=unconfined", opt)
		}
	}
	if hc.MaskedPaths != nil {
		l.MaskedPaths = hc.MaskedPaths
	}
	if hc.ReadonlyPaths != nil {
		l.ReadonlyPaths = hc.ReadonlyPaths
	}
	return s, nil
}

func hasMount(ms []MountPoint, dst string) bool {
	for _, m := range ms {
		if m.Destination == dst {
			return true
		}
	}
	return false
}

// sortMounts orders mounts so that a parent is mounted before what lies
// below it, keeping the given order otherwise.
func sortMounts(ms []specs.Mount) {
	sort.SliceStable(ms, func(i, j int) bool {
		return depth(ms[i].Destination) < depth(ms[j].Destination)
	})
}

func depth(p string) int {
	p = filepath.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// containerEnv is the process environment: PATH when the image sets none,
// HOSTNAME, TERM with a tty, HOME, then the configured variables.
func containerEnv(cfg *container.Config, home string) []string {
	env := []string{}
	has := func(k string) bool {
		for _, e := range cfg.Env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	if !has("PATH") {
		env = append(env, "PATH="+DefaultPath)
	}
	if cfg.Hostname != "" {
		env = append(env, "HOSTNAME="+cfg.Hostname)
	}
	if cfg.Tty && !has("TERM") {
		env = append(env, "TERM=xterm")
	}
	if !has("HOME") {
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	return append(env, cfg.Env...)
}

// capabilities is Docker's default set with --cap-add and --cap-drop
// applied (ALL allowed in both), or every capability when privileged.
func capabilities(hc *container.HostConfig) ([]string, error) {
	all := boundedCapabilities()
	if hc.Privileged {
		return all, nil
	}
	norm := func(c string) (string, error) {
		c = strings.ToUpper(c)
		if c == "ALL" {
			return c, nil
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if _, ok := caps.Number(c); !ok {
			return "", fmt.Errorf("unknown capability %q", c)
		}
		return c, nil
	}
	set := slices.Clone(seccomp.DockerDefaultCapabilities)
	for _, d := range hc.CapDrop {
		d, err := norm(d)
		if err != nil {
			return nil, fmt.Errorf("--cap-drop: %w", err)
		}
		if d == "ALL" {
			set = nil
			continue
		}
		set = slices.DeleteFunc(set, func(c string) bool { return c == d })
	}
	for _, a := range hc.CapAdd {
		a, err := norm(a)
		if err != nil {
			return nil, fmt.Errorf("--cap-add: %w", err)
		}
		if a == "ALL" {
			set = slices.Clone(all)
			continue
		}
		if !slices.Contains(set, a) {
			set = append(set, a)
		}
	}
	return set, nil
}

// resources converts Docker's resources to the OCI ones.
func resources(hc *container.HostConfig) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{}
	h := hc.Resources
	if h.Memory != 0 || h.MemorySwap != 0 || h.MemoryReservation != 0 || h.OomKillDisable != nil || h.MemorySwappiness != nil {
		m := &specs.LinuxMemory{}
		if h.Memory < 0 || (h.Memory > 0 && h.Memory < 6<<20) {
			return nil, fmt.Errorf("memory limit %d is too small: the minimum is 6MiB", h.Memory)
		}
		if h.Memory > 0 {
			m.Limit = ptr(h.Memory)
			swap := h.MemorySwap
			if swap == 0 {
				swap = 2 * h.Memory // Docker: as much swap as memory
			}
			if swap > 0 && swap < h.Memory {
				return nil, fmt.Errorf("--memory-swap %d is smaller than --memory %d: it is the total of memory and swap", swap, h.Memory)
			}
			m.Swap = ptr(swap)
		} else if h.MemorySwap > 0 {
			return nil, fmt.Errorf("--memory-swap needs --memory")
		}
		if h.MemoryReservation > 0 {
			m.Reservation = ptr(h.MemoryReservation)
		}
		if h.MemorySwappiness != nil && *h.MemorySwappiness >= 0 {
			v := uint64(*h.MemorySwappiness)
			m.Swappiness = &v
		}
		m.DisableOOMKiller = h.OomKillDisable
		r.Memory = m
	}
	if h.NanoCPUs != 0 && (h.CPUQuota != 0 || h.CPUPeriod != 0) {
		return nil, fmt.Errorf("--cpus and --cpu-quota/--cpu-period cannot be used together")
	}
	if h.NanoCPUs < 0 || h.NanoCPUs > int64(1e9)*int64(cpuCount()) {
		return nil, fmt.Errorf("--cpus %.2f: range is 0.01 to %d (the host's CPUs)", float64(h.NanoCPUs)/1e9, cpuCount())
	}
	if h.NanoCPUs != 0 || h.CPUShares != 0 || h.CPUQuota != 0 || h.CPUPeriod != 0 || h.CpusetCpus != "" || h.CpusetMems != "" {
		c := &specs.LinuxCPU{Cpus: h.CpusetCpus, Mems: h.CpusetMems}
		if h.CPUShares != 0 {
			c.Shares = ptr(uint64(h.CPUShares))
		}
		if h.NanoCPUs != 0 {
			period := uint64(100000)
			c.Period = &period
			c.Quota = ptr(h.NanoCPUs * int64(period) / 1e9)
		}
		if h.CPUQuota != 0 {
			c.Quota = ptr(h.CPUQuota)
		}
		if h.CPUPeriod != 0 {
			c.Period = ptr(uint64(h.CPUPeriod))
		}
		r.CPU = c
	}
	if h.PidsLimit != nil && *h.PidsLimit != 0 {
		r.Pids = &specs.LinuxPids{Limit: h.PidsLimit}
		if *h.PidsLimit < 0 {
			r.Pids.Limit = ptr(int64(-1))
		}
	}
	if h.BlkioWeight != 0 {
		r.BlockIO = &specs.LinuxBlockIO{Weight: ptr(h.BlkioWeight)}
	}
	return r, nil
}

func ptr[T any](v T) *T { return &v }

func cpuCount() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return set.Count()
}

// deviceMapping turns --device HOST[:CONTAINER[:PERMS]] into a spec device
// and its cgroup rule.
func deviceMapping(d container.DeviceMapping) (specs.LinuxDevice, specs.LinuxDeviceCgroup, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.PathOnHost, &st); err != nil {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, fmt.Errorf("--device %s: %w", d.PathOnHost, err)
	}
	dev, ok := specDevice(d.PathOnHost, &st)
	if !ok {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, fmt.Errorf("--device %s: not a device node", d.PathOnHost)
	}
	perms := d.CgroupPermissions
	if perms == "" {
		perms = "rwm"
	}
	if strings.Trim(perms, "rwm") != "" {
		return specs.LinuxDevice{}, specs.LinuxDeviceCgroup{}, fmt.Errorf("--device %s: invalid permissions %q (a combination of r, w and m)", d.PathOnHost, perms)
	}
	if d.PathInContainer != "" {
		dev.Path = d.PathInContainer
	}
	rule := specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: ptr(dev.Major), Minor: ptr(dev.Minor), Access: perms}
	return dev, rule, nil
}

// specDevice describes the device node st (of path) as a spec device;
// false when it is not a character or block device.
func specDevice(path string, st *unix.Stat_t) (specs.LinuxDevice, bool) {
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, false
	}
	mode := os.FileMode(st.Mode & 0o777)
	return specs.LinuxDevice{Path: path, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))), FileMode: &mode, UID: ptr(st.Uid), GID: ptr(st.Gid)}, true
}

// hostDevices lists the host's device nodes for a privileged container.
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			switch p {
			case "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc", "/dev/.udev":
				return filepath.SkipDir
			}
			return nil
		}
		if p == "/dev/console" || p == "/dev/ptmx" {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		if dev, ok := specDevice(p, &st); ok {
			out = append(out, dev)
		}
		return nil
	})
	return out, err
}

// nofile is the open-file limit containers get: Docker's 1048576, or the
// host's hard limit when lower (raising it needs CAP_SYS_RESOURCE).
func nofile() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err == nil && r.Max < 1048576 {
		return r.Max
	}
	return 1048576
}

// boundedCapabilities is every capability the kernel knows that berth
// itself may hand on (its bounding set): what --privileged and
// --cap-add ALL give. A host that runs berth with a reduced bounding set
// (a container host, say) gets that set, not a capset failure.
func boundedCapabilities() []string {
	var out []string
	for _, name := range profile.Capabilities() {
		n, ok := caps.Number(name)
		if !ok {
			continue
		}
		if r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0); err == nil && r == 1 {
			out = append(out, name)
		}
	}
	return out
}

// DefaultCgroupParent is the cgroup containers are made under without
// --cgroup-parent: /berth, or $BERTH_CGROUP_PARENT (it must name berth, so
// that what berth makes on the host is recognisable).
func DefaultCgroupParent() string {
	if p := os.Getenv("BERTH_CGROUP_PARENT"); p != "" && strings.Contains(p, "berth") {
		return p
	}
	return "/berth"
}
