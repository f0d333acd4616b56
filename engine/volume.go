package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/mount"
	bolt "go.etcd.io/bbolt"
)

// Volume is a named volume: a directory under berth's root that outlives
// containers, in Docker's inspect shape.
type Volume struct {
	Name       string
	Driver     string
	Mountpoint string
	CreatedAt  time.Time
	Labels     map[string]string
	Options    map[string]string
	Scope      string
	// Anonymous volumes are made for an image's VOLUMEs (or -v /dst) and
	// removed with `rm -v` / `--rm`.
	Anonymous bool `json:",omitempty"`
	// Populated is set once the volume got the image's content at its
	// mount point (done on first use unless nocopy).
	Populated bool `json:",omitempty"`
}

func (e *Engine) volumeData(name string) string { return filepath.Join(e.volumeDir(name), "_data") }

// VolumeCreate makes a named volume (or returns the existing one, as
// Docker does).
func (e *Engine) VolumeCreate(ctx context.Context, name string, labels, opts map[string]string) (*Volume, error) {
	anonymous := name == ""
	if anonymous {
		name = newID()
	}
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("invalid volume name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	for k := range opts {
		return nil, fmt.Errorf("volume option %q is not supported by the local driver of berth", k)
	}
	v := &Volume{Name: name, Driver: "local", Mountpoint: e.volumeData(name), CreatedAt: time.Now().UTC().Truncate(time.Second),
		Labels: labels, Options: opts, Scope: "local", Anonymous: anonymous}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	err := e.db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVolumes)
		if old := b.Get([]byte(name)); old != nil {
			return json.Unmarshal(old, v)
		}
		if err := os.MkdirAll(v.Mountpoint, 0o755); err != nil {
			return fmt.Errorf("create volume %s: %w", name, err)
		}
		data, _ := json.Marshal(v)
		return b.Put([]byte(name), data)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// VolumeGet returns a volume by name.
func (e *Engine) VolumeGet(name string) (*Volume, error) {
	var v *Volume
	err := e.db.view(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketVolumes).Get([]byte(name))
		if data == nil {
			return fmt.Errorf("no such volume: %s: %w", name, ErrNotFound)
		}
		v = new(Volume)
		return json.Unmarshal(data, v)
	})
	return v, err
}

// VolumeList lists volumes by name.
func (e *Engine) VolumeList() ([]*Volume, error) {
	var out []*Volume
	err := e.db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVolumes).ForEach(func(k, data []byte) error {
			v := new(Volume)
			if err := json.Unmarshal(data, v); err != nil {
				return fmt.Errorf("volume %s: corrupt record: %w", k, err)
			}
			out = append(out, v)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// VolumeUsers returns the containers that use a volume.
func (e *Engine) VolumeUsers(name string) ([]*Container, error) {
	all, err := e.List()
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, c := range all {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				out = append(out, c)
				break
			}
		}
	}
	return out, nil
}

// VolumeRemove removes a volume no container uses (force: even if the
// volume does not exist).
func (e *Engine) VolumeRemove(name string, force bool) error {
	users, err := e.VolumeUsers(name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("volume %s is in use by container %s: %w", name, ShortID(users[0].ID), ErrConflict)
	}
	found := false
	err = e.db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVolumes)
		found = b.Get([]byte(name)) != nil
		return b.Delete([]byte(name))
	})
	if err != nil {
		return err
	}
	if !found && !force {
		return fmt.Errorf("no such volume: %s: %w", name, ErrNotFound)
	}
	return e.removeVolumeDir(name)
}

func (e *Engine) removeVolumeDir(name string) error {
	if name == "" || strings.ContainsAny(name, "/") {
		return nil
	}
	return os.RemoveAll(e.volumeDir(name))
}

// VolumePrune removes unused volumes: anonymous ones, or all with all.
func (e *Engine) VolumePrune(all bool) (removed []string, space int64, err error) {
	vols, err := e.VolumeList()
	if err != nil {
		return nil, 0, err
	}
	for _, v := range vols {
		if !all && !v.Anonymous {
			continue
		}
		users, err := e.VolumeUsers(v.Name)
		if err != nil || len(users) > 0 {
			continue
		}
		size := dirSize(v.Mountpoint)
		if err := e.VolumeRemove(v.Name, true); err == nil {
			removed = append(removed, v.Name)
			space += size
		}
	}
	return removed, space, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// planMounts turns -v, --mount, --tmpfs and the image's VOLUMEs into the
// container's mount points. Named volumes are recorded by name (made at
// create), anonymous ones get a fresh name.
func (e *Engine) planMounts(c *Container) ([]MountPoint, error) {
	hc := c.HostConfig
	var out []MountPoint
	seen := map[string]bool{}
	add := func(m MountPoint) error {
		m.Destination = path.Clean(m.Destination)
		if !path.IsAbs(m.Destination) {
			return fmt.Errorf("invalid mount destination %q: must be an absolute path", m.Destination)
		}
		if m.Destination == "/" {
			return fmt.Errorf("invalid mount destination \"/\": the root cannot be a mount")
		}
		if seen[m.Destination] {
			return fmt.Errorf("duplicate mount point: %s", m.Destination)
		}
		seen[m.Destination] = true
		out = append(out, m)
		return nil
	}
	for _, b := range hc.Binds {
		m, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		if m.Type == "bind" {
			// -v creates a missing host directory, as Docker does.
			if _, err := os.Stat(m.Source); os.IsNotExist(err) {
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return nil, fmt.Errorf("-v %s: create %s: %w", b, m.Source, err)
				}
			}
		}
		if err := add(m); err != nil {
			return nil, fmt.Errorf("-v %s: %w", b, err)
		}
	}
	for _, mm := range hc.Mounts {
		m := MountPoint{Destination: mm.Target, RW: !mm.ReadOnly, Source: mm.Source}
		switch mm.Type {
		case mount.TypeBind:
			m.Type = "bind"
			if !filepath.IsAbs(mm.Source) {
				return nil, fmt.Errorf("--mount type=bind: source %q must be an absolute path", mm.Source)
			}
			if _, err := os.Stat(mm.Source); err != nil {
				return nil, fmt.Errorf("--mount type=bind: bind source path does not exist: %s", mm.Source)
			}
			if mm.BindOptions != nil && mm.BindOptions.Propagation != "" {
				m.Options = append(m.Options, string(mm.BindOptions.Propagation))
			}
		case mount.TypeVolume:
			m.Type, m.Name, m.Source = "volume", mm.Source, ""
			if mm.VolumeOptions != nil && mm.VolumeOptions.NoCopy {
				m.Options = append(m.Options, "nocopy")
			}
		case mount.TypeTmpfs:
			m.Type, m.Source, m.RW = "tmpfs", "tmpfs", true
			if o := mm.TmpfsOptions; o != nil {
				if o.SizeBytes > 0 {
					m.Options = append(m.Options, fmt.Sprintf("size=%d", o.SizeBytes))
				}
				if o.Mode != 0 {
					m.Options = append(m.Options, fmt.Sprintf("mode=%o", o.Mode))
				}
			}
		default:
			return nil, fmt.Errorf("--mount: unsupported type %q: want bind, volume or tmpfs", mm.Type)
		}
		if err := add(m); err != nil {
			return nil, fmt.Errorf("--mount: %w", err)
		}
	}
	for dst, opts := range hc.Tmpfs {
		m := MountPoint{Type: "tmpfs", Source: "tmpfs", Destination: dst, RW: true}
		if opts != "" {
			m.Options = strings.Split(opts, ",")
		}
		if err := add(m); err != nil {
			return nil, fmt.Errorf("--tmpfs %s: %w", dst, err)
		}
	}
	var anon []string
	for dst := range c.Config.Volumes {
		if !seen[path.Clean(dst)] {
			anon = append(anon, dst)
		}
	}
	sort.Strings(anon)
	for _, dst := range anon {
		if err := add(MountPoint{Type: "volume", Destination: dst, RW: true, Anonymous: true}); err != nil {
			return nil, fmt.Errorf("image volume %s: %w", dst, err)
		}
	}
	return out, nil
}

// parseBind parses -v SRC:DST[:OPTS] or -v DST (anonymous volume).
func parseBind(b string) (MountPoint, error) {
	parts := strings.Split(b, ":")
	m := MountPoint{RW: true}
	var opts string
	switch len(parts) {
	case 1:
		m.Type, m.Destination, m.Anonymous = "volume", parts[0], true
	case 2:
		m.Source, m.Destination = parts[0], parts[1]
	case 3:
		m.Source, m.Destination, opts = parts[0], parts[1], parts[2]
	default:
		return m, fmt.Errorf("invalid volume specification %q: want [SOURCE:]DESTINATION[:OPTIONS]", b)
	}
	if m.Type == "" {
		if m.Source == "" {
			return m, fmt.Errorf("invalid volume specification %q: empty source", b)
		}
		if strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") {
			if !filepath.IsAbs(m.Source) {
				return m, fmt.Errorf("invalid volume specification %q: the host path must be absolute", b)
			}
			m.Type = "bind"
		} else {
			if err := ValidateName(m.Source); err != nil {
				return m, fmt.Errorf("invalid volume name %q in %q", m.Source, b)
			}
			m.Type, m.Name, m.Source = "volume", m.Source, ""
		}
	}
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "ro":
				m.RW = false
			case "rw":
				m.RW = true
			case "z", "Z":
				// SELinux relabelling: no SELinux here.
			case "nocopy":
				m.Options = append(m.Options, "nocopy")
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				m.Options = append(m.Options, o)
			default:
				return m, fmt.Errorf("invalid volume option %q in %q", o, b)
			}
		}
	}
	return m, nil
}

// createVolumes makes the named and anonymous volumes the mounts name and
// fills in their sources. It returns the volumes it created (to undo).
func (e *Engine) createVolumes(ctx context.Context, c *Container, mounts []MountPoint) ([]string, error) {
	var created []string
	for i := range mounts {
		m := &mounts[i]
		if m.Type != "volume" {
			continue
		}
		existed := false
		if m.Name != "" {
			if _, err := e.VolumeGet(m.Name); err == nil {
				existed = true
			}
		}
		v, err := e.VolumeCreate(ctx, m.Name, nil, nil)
		if err != nil {
			return created, err
		}
		if !existed {
			created = append(created, v.Name)
		}
		m.Name, m.Source = v.Name, v.Mountpoint
	}
	return created, nil
}

// markPopulated records that a volume got its image content.
func (e *Engine) markPopulated(name string) error {
	return e.db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVolumes)
		data := b.Get([]byte(name))
		if data == nil {
			return nil
		}
		v := new(Volume)
		if err := json.Unmarshal(data, v); err != nil {
			return err
		}
		v.Populated = true
		data, _ = json.Marshal(v)
		return b.Put([]byte(name), data)
	})
}
