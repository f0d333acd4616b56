package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/idmap"
)

// MountAll mounts mounts on target, in order (later ones on top).
//
// overlay mounts are made with the new mount API (fsopen, fsconfig,
// fsmount, move_mount), giving each lower directory as its own
// "lowerdir+" parameter (Linux 6.8+), so the length of a layer chain is
// not bounded by mount(2)'s one-page option string. fsconfig takes at
// most 256 bytes per value, so a longer path is passed as
// /proc/self/fd/N/<name> through a descriptor of its parent directory.
// Without fsopen or "lowerdir+" (older kernels) the overlay is mounted
// with mount(2) if its options fit in a page. Bind mounts with "ro" (or
// other flags) are bound, then remounted with those flags.
func MountAll(mounts []Mount, target string) error {
	return mountAll(mounts, target, nil)
}

// MountAllIDMapped is MountAll for a container in a user namespace with
// the given mappings: every layer is mounted through an id-mapped mount,
// so that a file stored as owned by ID n belongs to the container's ID n
// (host ID mapped from n), and what the container writes is stored with
// its own IDs. The snapshots on disk stay as they are for every other
// user of them (images, commit, diff, other containers).
//
// Overlay creates its work files with the mounter's credentials (host
// root), which the container's mapping does not cover; the mount of the
// upper and work directories therefore also maps host root, to
// IDMountOwner, an ID no image uses. Whiteouts in the upper directory
// are stored with that owner.
func MountAllIDMapped(mounts []Mount, target string, uids, gids []specs.LinuxIDMapping) error {
	if len(uids) == 0 && len(gids) == 0 {
		return MountAll(mounts, target)
	}
	m := &mapper{uids: uids, gids: gids}
	defer m.close()
	return mountAll(mounts, target, m)
}

// IDMountOwner is the ID host root is stored as through the id-mapped
// mount of an overlay upper directory (the highest valid ID).
const IDMountOwner = 1<<32 - 2

// mapper makes the id-mapped mounts of one MountAllIDMapped call.
type mapper struct {
	uids, gids   []specs.LinuxIDMapping
	plain, upper *os.File // user namespaces: the mappings, and with host root added
	mounts       []*os.File
}

func (m *mapper) ns(upper bool) (*os.File, error) {
	if upper {
		if m.upper == nil {
			own := specs.LinuxIDMapping{ContainerID: IDMountOwner, HostID: 0, Size: 1}
			f, err := idmap.UsernsFD(append(m.uids[:len(m.uids):len(m.uids)], own), append(m.gids[:len(m.gids):len(m.gids)], own))
			if err != nil {
				return nil, err
			}
			m.upper = f
		}
		return m.upper, nil
	}
	if m.plain == nil {
		f, err := idmap.UsernsFD(m.uids, m.gids)
		if err != nil {
			return nil, err
		}
		m.plain = f
	}
	return m.plain, nil
}

// clone returns an id-mapped, detached copy of the mount at path.
func (m *mapper) clone(path string, upper, recursive bool) (*os.File, error) {
	ns, err := m.ns(upper)
	if err != nil {
		return nil, err
	}
	f, err := idmap.Clone(path, ns, recursive)
	if err != nil {
		return nil, err
	}
	m.mounts = append(m.mounts, f)
	return f, nil
}

// path is clone's result as a path the kernel resolves to it.
func (m *mapper) path(path string, upper bool) (string, error) {
	f, err := m.clone(path, upper, false)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("/proc/self/fd/%d", f.Fd()), nil
}

func (m *mapper) close() {
	for _, f := range append(m.mounts, m.plain, m.upper) {
		if f != nil {
			f.Close()
		}
	}
}

func mountAll(mounts []Mount, target string, mp *mapper) error {
	for i, m := range mounts {
		if err := mountOne(m, target, mp); err != nil {
			if i > 0 {
				UnmountAll(target)
			}
			return fmt.Errorf("mount %s %s on %s: %w", m.Type, m.Source, target, err)
		}
	}
	return nil
}

// UnmountAll unmounts everything mounted on target (nothing mounted is
// not an error). A busy mount is retried for a while.
func UnmountAll(target string) error {
	for busy := 0; ; {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue
		case err == unix.EINVAL || err == unix.ENOENT:
			return nil
		case err == unix.EINTR:
			continue
		case err == unix.EBUSY && busy < 100:
			busy++
			time.Sleep(10 * time.Millisecond)
			continue
		}
		return fmt.Errorf("unmount %s: %w", target, err)
	}
}

var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
	attr  uint64
}{
	"ro":          {flag: unix.MS_RDONLY, attr: unix.MOUNT_ATTR_RDONLY},
	"rw":          {clear: true, flag: unix.MS_RDONLY},
	"nosuid":      {flag: unix.MS_NOSUID, attr: unix.MOUNT_ATTR_NOSUID},
	"suid":        {clear: true, flag: unix.MS_NOSUID},
	"nodev":       {flag: unix.MS_NODEV, attr: unix.MOUNT_ATTR_NODEV},
	"dev":         {clear: true, flag: unix.MS_NODEV},
	"noexec":      {flag: unix.MS_NOEXEC, attr: unix.MOUNT_ATTR_NOEXEC},
	"exec":        {clear: true, flag: unix.MS_NOEXEC},
	"noatime":     {flag: unix.MS_NOATIME, attr: unix.MOUNT_ATTR_NOATIME},
	"nodiratime":  {flag: unix.MS_NODIRATIME, attr: unix.MOUNT_ATTR_NODIRATIME},
	"relatime":    {flag: unix.MS_RELATIME, attr: unix.MOUNT_ATTR_RELATIME},
	"strictatime": {flag: unix.MS_STRICTATIME, attr: unix.MOUNT_ATTR_STRICTATIME},
	"bind":        {flag: unix.MS_BIND},
	"rbind":       {flag: unix.MS_BIND | unix.MS_REC},
}

// parseOptions splits options into mount flags, mount attributes (for
// fsmount) and filesystem parameters.
func parseOptions(opts []string) (flags uintptr, attrs uint64, params []string) {
	for _, o := range opts {
		f, ok := mountFlags[o]
		switch {
		case !ok:
			params = append(params, o)
		case f.clear:
			flags &^= f.flag
		default:
			flags |= f.flag
			attrs |= f.attr
		}
	}
	return flags, attrs, params
}

func mountOne(m Mount, target string, mp *mapper) error {
	flags, attrs, params := parseOptions(m.Options)
	switch {
	case m.Type == "bind" || flags&unix.MS_BIND != 0:
		if len(params) > 0 {
			return fmt.Errorf("unsupported bind mount options %q", params)
		}
		if mp != nil {
			f, err := mp.clone(m.Source, false, flags&unix.MS_REC != 0)
			if err != nil {
				return err
			}
			if attrs != 0 {
				attr := unix.MountAttr{Attr_set: attrs}
				if err := unix.MountSetattr(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
					return fmt.Errorf("set %q: %w", m.Options, err)
				}
			}
			return unix.MoveMount(int(f.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		if err := unix.Mount(m.Source, target, "", unix.MS_BIND|flags&unix.MS_REC, ""); err != nil {
			return err
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|rest, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("remount with %q: %w", m.Options, err)
			}
		}
		return nil
	case m.Type == "overlay":
		err := mountOverlay(m, target, attrs, params, mp)
		if errors.Is(err, errNoNewAPI) && mp != nil {
			return errors.New("id-mapped overlay layers need the new mount API and overlay's lowerdir+ (Linux 6.8)")
		}
		if errors.Is(err, errNoNewAPI) {
			return mountData(m, target, flags, params)
		}
		return err
	}
	if mp != nil {
		return fmt.Errorf("%s mounts cannot be id-mapped", m.Type)
	}
	return mountData(m, target, flags, params)
}

func mountData(m Mount, target string, flags uintptr, params []string) error {
	data := strings.Join(params, ",")
	if len(data) >= unix.Getpagesize() {
		return fmt.Errorf("options are %d bytes, more than mount(2) takes (%d); this kernel lacks the new mount API (overlay lowerdir+ needs Linux 6.8)", len(data), unix.Getpagesize()-1)
	}
	return unix.Mount(m.Source, target, m.Type, flags, data)
}

var errNoNewAPI = errors.New("new mount API unavailable")

// maxParam is the longest string value fsconfig accepts.
const maxParam = 255

// shortener turns paths too long for fsconfig into /proc/self/fd paths.
type shortener struct{ fds []int }

func (s *shortener) path(p string) (string, error) {
	if len(p) <= maxParam {
		return p, nil
	}
	dir, base := filepath.Split(filepath.Clean(p))
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	s.fds = append(s.fds, fd)
	short := fmt.Sprintf("/proc/self/fd/%d/%s", fd, base)
	if len(short) > maxParam {
		return "", fmt.Errorf("path %s: its last component is too long", p)
	}
	return short, nil
}

func (s *shortener) close() {
	for _, fd := range s.fds {
		unix.Close(fd)
	}
}

func mountOverlay(m Mount, target string, attrs uint64, params []string, mp *mapper) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if err == unix.ENOSYS || err == unix.EPERM {
			return errNoNewAPI
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	var sh shortener
	defer sh.close()
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return fsError(fsfd, fmt.Sprintf("%s=%s", key, value), err)
		}
		return nil
	}
	source := m.Source
	if source == "" {
		source = "overlay"
	}
	if err := set("source", source); err != nil {
		return err
	}
	for _, p := range params {
		key, value, hasValue := strings.Cut(p, "=")
		switch {
		case key == "lowerdir":
			for i, l := range strings.Split(value, ":") {
				s, err := sh.path(l)
				if mp != nil {
					s, err = mp.path(l, false)
				}
				if err != nil {
					return err
				}
				if err := unix.FsconfigSetString(fsfd, "lowerdir+", s); err != nil {
					msgs := readFsMessages(fsfd)
					if i == 0 && err == unix.EINVAL && (len(msgs) == 0 || strings.Contains(strings.Join(msgs, " "), "nknown parameter")) {
						return errNoNewAPI
					}
					return fmt.Errorf("lowerdir+=%s: %w (kernel: %s)", l, err, strings.Join(msgs, "; "))
				}
			}
		case (key == "upperdir" || key == "workdir") && mp != nil:
			// Both must be on one mount: map their common parent.
			up, work := paramValue(params, "upperdir"), paramValue(params, "workdir")
			if filepath.Dir(up) != filepath.Dir(work) {
				return fmt.Errorf("id-mapped overlay: upperdir %s and workdir %s are not in one directory", up, work)
			}
			if key == "workdir" {
				continue // set with upperdir
			}
			parent, err := mp.path(filepath.Dir(up), true)
			if err != nil {
				return err
			}
			if err := set("upperdir", parent+"/"+filepath.Base(up)); err != nil {
				return err
			}
			if err := set("workdir", parent+"/"+filepath.Base(work)); err != nil {
				return err
			}
		case key == "upperdir" || key == "workdir":
			s, err := sh.path(value)
			if err != nil {
				return err
			}
			if err := set(key, s); err != nil {
				return err
			}
		case hasValue:
			if err := set(key, value); err != nil {
				return err
			}
		default:
			if err := unix.FsconfigSetFlag(fsfd, key); err != nil {
				return fsError(fsfd, key, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fsError(fsfd, "create", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attrs))
	if err != nil {
		return fsError(fsfd, "fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// paramValue returns the value of key=value in params.
func paramValue(params []string, key string) string {
	for _, p := range params {
		if k, v, ok := strings.Cut(p, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// readFsMessages drains the kernel's messages about an fsopen context.
func readFsMessages(fsfd int) []string {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			return msgs
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
}

func fsError(fsfd int, what string, err error) error {
	if msgs := readFsMessages(fsfd); len(msgs) > 0 {
		return fmt.Errorf("%s: %w (kernel: %s)", what, err, strings.Join(msgs, "; "))
	}
	return fmt.Errorf("%s: %w", what, err)
}
