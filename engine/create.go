package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/runtime"
	"github.com/berth-project/berth/storage/snapshot"
)

// CreateRequest is what `berth create` / `run` ask for: Docker's container
// and host configuration, Config.Image naming the image.
type CreateRequest struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	// NetworkAliases (--network-alias) and IP (--ip) apply to the
	// container's user network.
	NetworkAliases []string
	IP             string
}

// ImageConfig is the part of an image's configuration a container
// inherits.
type ImageConfig struct {
	Cmd, Entrypoint, Env, Shell  []string
	WorkingDir, User, StopSignal string
	Labels                       map[string]string
	ExposedPorts, Volumes        map[string]struct{}
	Healthcheck                  *container.HealthConfig
}

// ImageInfo is an image resolved for a container.
type ImageInfo struct {
	ID      string // config digest
	Ref     string // as named
	ChainID string // the committed snapshot of its top layer ("" for no layers)
	Config  ImageConfig
}

// Images is what the engine needs from the image store.
type Images interface {
	// ForContainer resolves ref and makes sure its layers are unpacked.
	ForContainer(ctx context.Context, ref string) (*ImageInfo, error)
}

func snapshotKey(id string) string { return "berth-ctr-" + id }

// Create makes a container: its record, its writable root filesystem and
// its volumes. On error nothing is left behind.
func (e *Engine) Create(ctx context.Context, req *CreateRequest) (_ *Container, retErr error) {
	cfg, hc := req.Config, req.HostConfig
	if cfg == nil || cfg.Image == "" {
		return nil, errors.New("no image given")
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	cfg, hc = clone(cfg), clone(hc)
	name := strings.TrimPrefix(req.Name, "/")
	if name != "" {
		if err := ValidateName(name); err != nil {
			return nil, err
		}
		if id, err := e.idByName(name); err == nil {
			return nil, fmt.Errorf("the container name %q is already in use by container %s; remove or rename that container to reuse the name: %w", name, ShortID(id), ErrConflict)
		}
	}
	if err := validateHostConfig(hc); err != nil {
		return nil, err
	}
	if n, _ := usernsSize(hc.UsernsMode); n > 0 {
		// Refuse now what start would: nothing is left behind.
		if err := checkSearchable(hc.UsernsMode, e.cfg.RunDir, -1, -1); err != nil {
			return nil, err
		}
	}
	runtime.Trace("engine create: begin")
	img, err := e.images.ForContainer(ctx, cfg.Image)
	if err != nil {
		return nil, err
	}
	runtime.Trace("engine create: image resolved")
	id := newID()
	mergeImageConfig(cfg, &img.Config)
	if cfg.Hostname == "" && !hc.NetworkMode.IsHost() && !hc.UTSMode.IsHost() {
		cfg.Hostname = ShortID(id)
	}
	c := &Container{
		ID: id, Name: name, Created: time.Now().UTC(),
		Config: cfg, HostConfig: hc,
		Image: img.ID, ImageRef: cfg.Image,
		Snapshot:       snapshotKey(id),
		State:          State{Status: "created"},
		NetworkAliases: req.NetworkAliases, StaticIP: req.IP,
	}
	if err := e.checkNetworkMode(c); err != nil {
		return nil, err
	}
	args := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: image %s has no CMD or ENTRYPOINT and none was given", cfg.Image)
	}
	c.Path, c.Args = args[0], args[1:]

	// Check the whole configuration now, so that a bad flag fails create
	// (not a later start) and leaves nothing behind.
	mounts, err := e.planMounts(c)
	if err != nil {
		return nil, err
	}
	if _, err := buildSpec(c, &specInput{Rootfs: "/nonexistent", Mounts: mounts}); err != nil {
		return nil, err
	}

	runtime.Trace("engine create: config checked")
	if _, err := e.snap.Prepare(c.Snapshot, img.ChainID, map[string]string{"berth.container": id}); err != nil {
		return nil, fmt.Errorf("prepare root filesystem: %w", err)
	}
	defer func() {
		if retErr != nil {
			e.snap.Remove(c.Snapshot)
			os.RemoveAll(e.ctrDir(id))
		}
	}()
	if err := os.MkdirAll(e.ctrDir(id), 0o700); err != nil {
		return nil, err
	}
	created, err := e.createVolumes(ctx, c, mounts)
	defer func() {
		if retErr != nil {
			for _, v := range created {
				e.removeVolumeDir(v)
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	c.Mounts = mounts
	if name == "" {
		name, err = e.insertUnnamed(c)
	} else {
		err = e.insert(c)
	}
	if err != nil {
		return nil, err
	}
	runtime.Trace("engine create: recorded")
	e.event("container", "create", c, nil)
	return c, nil
}

func clone[T any](v *T) *T {
	c := *v
	return &c
}

func (e *Engine) idByName(name string) (string, error) {
	var id string
	err := e.db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNames).Get([]byte(name))
		if v == nil {
			return ErrNotFound
		}
		id = string(v)
		return nil
	})
	return id, err
}

// insert stores a new record with its name, failing if the name was taken
// meanwhile.
func (e *Engine) insert(c *Container) error {
	return e.db.update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if id := names.Get([]byte(c.Name)); id != nil {
			return fmt.Errorf("the container name %q is already in use by container %s; remove or rename that container to reuse the name: %w", c.Name, ShortID(string(id)), ErrConflict)
		}
		if err := names.Put([]byte(c.Name), []byte(c.ID)); err != nil {
			return err
		}
		if err := allocIDMap(tx, c); err != nil {
			return err
		}
		return putContainer(tx, c)
	})
}

// insertUnnamed stores a new record under a generated name.
func (e *Engine) insertUnnamed(c *Container) (string, error) {
	err := e.db.update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		for i := 0; ; i++ {
			n := randomName()
			if i > 10 {
				n = fmt.Sprintf("%s%d", n, i)
			}
			if names.Get([]byte(n)) == nil {
				c.Name = n
				break
			}
		}
		if err := names.Put([]byte(c.Name), []byte(c.ID)); err != nil {
			return err
		}
		if err := allocIDMap(tx, c); err != nil {
			return err
		}
		return putContainer(tx, c)
	})
	return c.Name, err
}

// mergeImageConfig fills what the user left unset from the image, as
// Docker does.
func mergeImageConfig(cfg *container.Config, img *ImageConfig) {
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		cfg.Cmd = slices.Clone(img.Cmd)
	}
	if cfg.Entrypoint == nil {
		cfg.Entrypoint = slices.Clone(img.Entrypoint)
	} else if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		cfg.Entrypoint = nil // --entrypoint "" clears the image's
	}
	env := slices.Clone(img.Env)
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(x string) bool { return strings.HasPrefix(x, k+"=") || x == k })
		env = append(env, kv)
	}
	cfg.Env = env
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = img.WorkingDir
	}
	if cfg.User == "" {
		cfg.User = img.User
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	if len(cfg.Shell) == 0 {
		cfg.Shell = slices.Clone(img.Shell)
	}
	if len(img.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range img.Labels {
			labels[k] = v
		}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		cfg.Labels = labels
	}
	if len(img.ExposedPorts) > 0 && cfg.ExposedPorts == nil {
		cfg.ExposedPorts = network.PortSet{}
	}
	for p := range img.ExposedPorts {
		if pp, err := network.ParsePort(p); err == nil {
			cfg.ExposedPorts[pp] = struct{}{}
		}
	}
	if len(img.Volumes) > 0 && cfg.Volumes == nil {
		cfg.Volumes = map[string]struct{}{}
	}
	for v := range img.Volumes {
		cfg.Volumes[v] = struct{}{}
	}
	if img.Healthcheck != nil {
		if cfg.Healthcheck == nil {
			hc := *img.Healthcheck
			cfg.Healthcheck = &hc
		} else {
			h := cfg.Healthcheck
			if len(h.Test) == 0 {
				h.Test = img.Healthcheck.Test
			}
			if h.Interval == 0 {
				h.Interval = img.Healthcheck.Interval
			}
			if h.Timeout == 0 {
				h.Timeout = img.Healthcheck.Timeout
			}
			if h.StartPeriod == 0 {
				h.StartPeriod = img.Healthcheck.StartPeriod
			}
			if h.Retries == 0 {
				h.Retries = img.Healthcheck.Retries
			}
		}
	}
}

func validateHostConfig(hc *container.HostConfig) error {
	rp := hc.RestartPolicy
	switch rp.Name {
	case "", container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if rp.MaximumRetryCount != 0 {
			return fmt.Errorf("invalid restart policy %q: a maximum retry count is only valid with on-failure", rp.Name)
		}
	case container.RestartPolicyOnFailure:
		if rp.MaximumRetryCount < 0 {
			return fmt.Errorf("invalid restart policy: maximum retry count %d cannot be negative", rp.MaximumRetryCount)
		}
	default:
		return fmt.Errorf("invalid restart policy %q: want no, always, unless-stopped or on-failure[:max-retries]", rp.Name)
	}
	if hc.AutoRemove && rp.Name != "" && rp.Name != container.RestartPolicyDisabled {
		return fmt.Errorf("conflicting options: --restart %s and --rm", rp.Name)
	}
	if lt := hc.LogConfig.Type; lt != "" && lt != "json-file" && lt != "none" {
		return fmt.Errorf("log driver %q is not supported: berth writes json-file logs (or none)", lt)
	}
	for k := range hc.LogConfig.Config {
		if k != "max-size" && k != "max-file" && k != "compress" && k != "labels" && k != "env" && k != "tag" {
			return fmt.Errorf("unknown log option %q for the json-file log driver", k)
		}
	}
	if _, _, err := logLimits(hc); err != nil {
		return err
	}
	for _, m := range []struct {
		flag string
		v    string
	}{{"--pid", string(hc.PidMode)}, {"--ipc", string(hc.IpcMode)}, {"--uts", string(hc.UTSMode)}} {
		if v := m.v; v != "" && v != "host" && !strings.HasPrefix(v, "container:") && v != "private" && v != "shareable" && !(m.flag == "--ipc" && v == "none") {
			return fmt.Errorf("invalid %s mode %q: want host or container:NAME", m.flag, v)
		}
	}
	if err := checkUserns(hc); err != nil {
		return err
	}
	switch hc.CgroupnsMode {
	case "", "host", "private":
	default:
		return fmt.Errorf("invalid --cgroupns mode %q: want host or private", hc.CgroupnsMode)
	}
	for dst := range hc.Tmpfs {
		if !path.IsAbs(dst) {
			return fmt.Errorf("--tmpfs %s: the destination must be an absolute path", dst)
		}
	}
	for k := range hc.Sysctls {
		if !strings.HasPrefix(k, "net.") && !strings.HasPrefix(k, "kernel.msg") && !strings.HasPrefix(k, "kernel.sem") && !strings.HasPrefix(k, "kernel.shm") && !strings.HasPrefix(k, "fs.mqueue.") {
			return fmt.Errorf("sysctl %q is not namespaced: it cannot be set per container", k)
		}
		if strings.HasPrefix(k, "net.") && hc.NetworkMode.IsHost() {
			return fmt.Errorf("sysctl %q cannot be set with --network host: it would change the host", k)
		}
	}
	return nil
}

// specNamespaces resolves --pid/--ipc/--uts/--network/--cgroupns.
func (e *Engine) specNamespaces(c *Container) (paths map[specs.LinuxNamespaceType]string, host map[specs.LinuxNamespaceType]bool, err error) {
	hc := c.HostConfig
	paths = map[specs.LinuxNamespaceType]string{}
	host = map[specs.LinuxNamespaceType]bool{}
	for _, m := range []struct {
		t    specs.LinuxNamespaceType
		mode string
		proc string
		flag string
	}{
		{specs.PIDNamespace, string(hc.PidMode), "pid", "--pid"},
		{specs.IPCNamespace, string(hc.IpcMode), "ipc", "--ipc"},
		{specs.UTSNamespace, string(hc.UTSMode), "uts", "--uts"},
	} {
		switch {
		case m.mode == "host":
			host[m.t] = true
		case strings.HasPrefix(m.mode, "container:"):
			ref := strings.TrimPrefix(m.mode, "container:")
			other, err := e.Get(ref)
			if err != nil {
				return nil, nil, fmt.Errorf("%s %s: %w", m.flag, m.mode, err)
			}
			if other.ID == c.ID {
				return nil, nil, fmt.Errorf("%s %s: a container cannot join its own namespaces", m.flag, m.mode)
			}
			if other.State.Status != "running" || other.State.Pid == 0 {
				return nil, nil, fmt.Errorf("%s %s: container %s is not running: %w", m.flag, m.mode, other.Name, ErrConflict)
			}
			paths[m.t] = fmt.Sprintf("/proc/%d/ns/%s", other.State.Pid, m.proc)
		}
	}
	return paths, host, nil
}

// cgroupNSPrivate says whether the container gets a cgroup namespace:
// Docker's default is private on cgroup v2 hosts and host on v1.
func cgroupNSPrivate(hc *container.HostConfig) bool {
	switch hc.CgroupnsMode {
	case "private":
		return true
	case "host":
		return false
	}
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// ensureWorkdir creates the working directory inside the root
// filesystem, as Docker does, never following symlinks out of it.
func ensureWorkdir(c *Container, rootfs, dir string, uid, gid uint32) error {
	if dir == "" || dir == "/" {
		return nil
	}
	cu, cg := -1, -1
	if c.IDMap != nil {
		cu, cg = c.hostRoot()
	}
	return mkdirInRoot(rootfs, filepath.Clean(dir), uid, gid, cu, cg)
}

var _ = snapshot.ErrNotFound
