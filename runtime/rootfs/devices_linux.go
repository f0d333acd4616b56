package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultDevices are the device nodes every container gets (OCI runtime
// spec, "Default Devices"), unless Linux.Devices lists the same path.
func DefaultDevices() []specs.LinuxDevice {
	mode := os.FileMode(0o666)
	var zero uint32
	dev := func(path string, major, minor int64) specs.LinuxDevice {
		return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &zero, GID: &zero}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3),
		dev("/dev/zero", 1, 5),
		dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8),
		dev("/dev/urandom", 1, 9),
		dev("/dev/tty", 5, 0),
	}
}

// devicesFor returns the spec's devices followed by the default devices the
// spec does not override.
func devicesFor(spec *specs.Spec) []specs.LinuxDevice {
	var devs []specs.LinuxDevice
	if spec.Linux != nil {
		devs = append(devs, spec.Linux.Devices...)
	}
	have := map[string]bool{}
	for _, d := range devs {
		have[cleanDest(d.Path)] = true
	}
	for _, d := range DefaultDevices() {
		if !have[d.Path] {
			devs = append(devs, d)
		}
	}
	return devs
}

func (r *rootCtx) createDevices() error {
	for _, d := range devicesFor(r.c.Spec) {
		if err := r.createDevice(d); err != nil {
			return fmt.Errorf("device %s (%s %d:%d): %w", d.Path, d.Type, d.Major, d.Minor, err)
		}
	}
	return nil
}

// deviceMode returns the mknod(2) mode (type and permission bits) of d.
func deviceMode(d specs.LinuxDevice) (uint32, error) {
	perm := uint32(0o666)
	if d.FileMode != nil {
		// The JSON number is the raw st_mode permission bits.
		perm = uint32(*d.FileMode) & 0o7777
	}
	switch d.Type {
	case "c", "u":
		return unix.S_IFCHR | perm, nil
	case "b":
		return unix.S_IFBLK | perm, nil
	case "p":
		return unix.S_IFIFO | perm, nil
	default:
		return 0, fmt.Errorf("unknown device type %q (want c, u, b or p)", d.Type)
	}
}

// createDevice makes one device node inside the root: mknod, chown and chmod
// in a user-namespace-free container, else (or when mknod is refused) a bind
// of the host's node onto an empty file. An existing file is kept, as runc
// keeps it.
func (r *rootCtx) createDevice(d specs.LinuxDevice) error {
	if d.Path == "" {
		return errors.New("empty path")
	}
	mode, err := deviceMode(d)
	if err != nil {
		return err
	}
	path, err := r.resolve(cleanDest(d.Path))
	if err != nil {
		return err
	}
	if path == "/" {
		return errors.New("path resolves to the container's root")
	}
	dir, err := pathrs.MkdirAllHandle(r.root, filepath.Dir(path), 0o755)
	if err != nil {
		return fmt.Errorf("create parent directory: %w", err)
	}
	defer dir.Close()
	name := filepath.Base(path)
	if r.c.UserNS {
		return bindDevice(dir, name, d.Path)
	}
	err = unix.Mknodat(int(dir.Fd()), name, mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
	switch {
	case errors.Is(err, unix.EEXIST):
		return nil
	case errors.Is(err, unix.EPERM):
		return bindDevice(dir, name, d.Path)
	case err != nil:
		return fmt.Errorf("mknod: %w", err)
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new node: %w", err)
	}
	node := os.NewFile(uintptr(fd), name)
	defer node.Close()
	var uid, gid uint32
	if d.UID != nil {
		uid = *d.UID
	}
	if d.GID != nil {
		gid = *d.GID
	}
	if err := unix.Fchownat(fd, "", int(uid), int(gid), unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
	}
	// mknod's mode went through the umask; set it exactly, after chown
	// (which may clear set-id bits).
	if err := unix.Chmod(procFdPath(node), mode&0o7777); err != nil {
		return fmt.Errorf("chmod %#o: %w", mode&0o7777, err)
	}
	return nil
}

// bindDevice bind-mounts the host's device node hostPath onto name in dir,
// creating an empty file there first.
func bindDevice(dir *os.File, name, hostPath string) error {
	f, err := createFileAt(dir, name, 0o000)
	if err != nil {
		return fmt.Errorf("create bind target: %w", err)
	}
	defer f.Close()
	if err := unix.Mount(hostPath, procFdPath(f), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind host node %s: %w", hostPath, err)
	}
	return nil
}

// setupDevSymlinks creates /dev/fd, /dev/std{in,out,err}, /dev/core (when
// the kernel has /proc/kcore) and replaces /dev/ptmx with a link to the
// devpts instance's ptmx.
func (r *rootCtx) setupDevSymlinks() error {
	devPath, err := r.resolve("/dev")
	if err != nil {
		return err
	}
	dev, err := pathrs.MkdirAllHandle(r.root, devPath, 0o755)
	if err != nil {
		return fmt.Errorf("create /dev: %w", err)
	}
	defer dev.Close()
	dfd := int(dev.Fd())
	links := [][2]string{
		{"fd", "/proc/self/fd"},
		{"stdin", "/proc/self/fd/0"},
		{"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"core", "/proc/kcore"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[1], dfd, l[0]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s -> %s: %w", l[0], l[1], err)
		}
	}
	err = unix.Unlinkat(dfd, "ptmx", 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(dfd, "ptmx", unix.AT_REMOVEDIR)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove /dev/ptmx: %w", err)
	}
	if err := unix.Symlinkat("pts/ptmx", dfd, "ptmx"); err != nil {
		return fmt.Errorf("symlink /dev/ptmx -> pts/ptmx: %w", err)
	}
	return nil
}
