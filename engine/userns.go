package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/idmap"
	"github.com/berth-project/berth/storage/archive"
)

// User namespaces (--userns auto): a container's IDs 0..size-1 are mapped
// to a range of unprivileged host IDs that no other container of this
// root uses, so that its root is nobody on the host. The ranges are taken
// from the "berth" entries of /etc/subuid and /etc/subgid, or, without
// any, from the range systemd sets aside for containers' users.

// DefaultUsernsSize is the number of IDs --userns auto maps: a whole
// 16-bit ID space, as Docker's remapping and Podman give.
const DefaultUsernsSize = 65536

// Subordinate-ID files and the user whose ranges berth uses.
var (
	subUIDFile = "/etc/subuid"
	subGIDFile = "/etc/subgid"
)

const subIDUser = "berth"

// defaultIDPool is systemd's range for container users (524288 to
// 1879048191), used when /etc/subuid names no "berth" range.
var defaultIDPool = []idmap.Range{{Start: 524288, Size: 1879048192 - 524288}}

// usernsSize parses --userns: 0 for the host's user namespace (the
// default), else the number of IDs to map.
func usernsSize(mode container.UsernsMode) (uint32, error) {
	m := string(mode)
	switch {
	case m == "" || m == "host":
		return 0, nil
	case m == "auto":
		return DefaultUsernsSize, nil
	case strings.HasPrefix(m, "auto:"):
		opt := strings.TrimPrefix(m, "auto:")
		v, ok := strings.CutPrefix(opt, "size=")
		if !ok {
			return 0, fmt.Errorf("invalid --userns %s: the only auto option is size=N", m)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 || n > 1<<30 {
			return 0, fmt.Errorf("invalid --userns %s: size must be a number of IDs from 1 to %d", m, 1<<30)
		}
		return uint32(n), nil
	}
	return 0, fmt.Errorf("invalid --userns mode %q: want host, auto or auto:size=N (a user namespace mapping the container's root to unused unprivileged host IDs)", m)
}

// checkUserns rejects what cannot work in a user namespace of its own.
func checkUserns(hc *container.HostConfig) error {
	n, err := usernsSize(hc.UsernsMode)
	if err != nil || n == 0 {
		return err
	}
	conflict := func(what string) error {
		return fmt.Errorf("conflicting options: --userns %s and %s (a remapped root has no privilege over the host's namespaces); use --userns host", hc.UsernsMode, what)
	}
	switch {
	case hc.Privileged:
		return conflict("--privileged")
	case hc.PidMode.IsHost():
		return conflict("--pid host")
	case hc.NetworkMode.IsHost():
		return conflict("--network host")
	case hc.IpcMode.IsHost():
		return conflict("--ipc host")
	case hc.UTSMode.IsHost():
		return conflict("--uts host")
	}
	return nil
}

// allocIDMap gives c, about to be stored by tx, its ID ranges if its
// --userns asks for them: the lowest free ranges of the pools. The
// records are the allocation table, so the transaction makes it safe
// against concurrent creates, and removing the container frees them.
func allocIDMap(tx *bolt.Tx, c *Container) error {
	size, err := usernsSize(c.HostConfig.UsernsMode)
	if err != nil || size == 0 {
		return err
	}
	var usedU, usedG []idmap.Range
	err = tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
		var r struct{ IDMap *archive.IDMap }
		if json.Unmarshal(v, &r) != nil || r.IDMap == nil {
			return nil
		}
		for _, m := range r.IDMap.UIDs {
			usedU = append(usedU, idmap.Range{Start: m.HostID, Size: m.Size})
		}
		for _, m := range r.IDMap.GIDs {
			usedG = append(usedG, idmap.Range{Start: m.HostID, Size: m.Size})
		}
		return nil
	})
	if err != nil {
		return err
	}
	pick := func(file string, used []idmap.Range) (uint32, error) {
		pool, err := idmap.ReadSubIDs(file, subIDUser)
		if err != nil {
			return 0, err
		}
		if len(pool) == 0 {
			pool = defaultIDPool
		}
		start, err := idmap.Allocate(pool, used, size)
		if err != nil {
			return 0, fmt.Errorf("--userns %s: %w for user %q in %s (other containers hold the rest)", c.HostConfig.UsernsMode, err, subIDUser, file)
		}
		return start, nil
	}
	u, err := pick(subUIDFile, usedU)
	if err != nil {
		return err
	}
	g, err := pick(subGIDFile, usedG)
	if err != nil {
		return err
	}
	c.IDMap = &archive.IDMap{
		UIDs: []specs.LinuxIDMapping{{ContainerID: 0, HostID: u, Size: size}},
		GIDs: []specs.LinuxIDMapping{{ContainerID: 0, HostID: g, Size: size}},
	}
	return nil
}

// hostRoot is the host uid and gid of the container's root: what owns
// the files berth makes for it (/etc/hosts, new volumes).
func (c *Container) hostRoot() (uid, gid int) {
	if c.IDMap == nil {
		return 0, 0
	}
	u, g, err := c.IDMap.ToHost(0, 0)
	if err != nil {
		return 0, 0
	}
	return u, g
}

// chownToRoot gives path to the container's root when it has its own
// user namespace.
func (c *Container) chownToRoot(path string) error {
	if c.IDMap == nil {
		return nil
	}
	u, g := c.hostRoot()
	return os.Lchown(path, u, g)
}

// checkSearchable fails unless the container's root, as its host IDs,
// may search dir and every directory above it: its init reaches its root
// filesystem by path from inside the user namespace (as runc's does).
// Before the IDs are allocated (uid and gid -1), only directories anyone
// may search pass.
func checkSearchable(mode container.UsernsMode, dir string, uid, gid int) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return err
		}
		ok := st.Mode&0o001 != 0 || (int(st.Gid) == gid && st.Mode&0o010 != 0) || (int(st.Uid) == uid && st.Mode&0o100 != 0)
		if !ok {
			who := "the container's root"
			if uid >= 0 {
				who += fmt.Sprintf(" (host uid %d)", uid)
			}
			return fmt.Errorf("--userns %s: %s cannot reach its root filesystem under %s: %s (mode %#o) may not be searched by other users; make it searchable (chmod o+x %s) or use a --run-dir below directories that are", mode, who, dir, d, st.Mode&0o7777, d)
		}
		if d == "/" {
			return nil
		}
	}
}

// netSysctls writes the --sysctl net.* settings of a remapped container
// into its network namespace from the host: the namespace belongs to the
// host's user namespace (berth made it), so the container's root may not
// write them itself.
func (e *Engine) netSysctls(c *Container, netns string) error {
	if c.IDMap == nil || netns == "" {
		return nil
	}
	var keys []string
	for k := range c.HostConfig.Sysctls {
		if strings.HasPrefix(k, "net.") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is left in the container's namespace and ends with
		// the goroutine (no UnlockOSThread).
		runtime.LockOSThread()
		fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", netns, err)
			return
		}
		for _, k := range keys {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(c.HostConfig.Sysctls[k]), 0); err != nil {
				errc <- fmt.Errorf("sysctl %s=%s: %w", k, c.HostConfig.Sysctls[k], err)
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}
