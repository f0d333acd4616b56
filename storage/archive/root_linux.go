package archive

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// root is a handle on the destination directory. Every lookup below it
// goes through openat2 with RESOLVE_IN_ROOT, so nothing resolves outside.
type root struct {
	fd   int
	path string

	// One cached parent directory: layer tars list a directory's entries
	// together, so this saves most lookups. Dropped on every removal,
	// the only operation that can change how a path resolves.
	cacheRel string
	cacheFD  int
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &root{fd: fd, path: dir, cacheFD: -1}, nil
}

func (r *root) close() {
	r.dropCache()
	unix.Close(r.fd)
}

func (r *root) dropCache() {
	if r.cacheFD >= 0 {
		unix.Close(r.cacheFD)
	}
	r.cacheFD, r.cacheRel = -1, ""
}

// cleanRel turns a tar path into a path relative to the root: leading
// slashes go and ".." cannot climb above the root. "" means the root.
func cleanRel(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

// resolveFlags: stay inside the root, never through /proc magic links.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// open resolves rel inside the root (symlinks in it are followed, but as
// if the root were "/") and returns a new O_PATH descriptor; with nofollow
// a symlink as the last component is an error (ELOOP).
func (r *root) open(rel string, flags uint64, nofollow bool) (int, error) {
	if rel == "" {
		rel = "."
	}
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(r.fd, rel, how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue // EAGAIN: a rename raced the lookup
		}
		if err != nil {
			return -1, fmt.Errorf("resolve %q in %s: %w", rel, r.path, err)
		}
		return fd, nil
	}
}

// dir returns a descriptor of directory rel (owned by the cache: do not
// close it, and do not keep it across another dir call). With mkdir,
// missing directories are created (mode 0755, owned by uid, gid).
func (r *root) dir(rel string, mkdir bool, uid, gid int) (int, error) {
	if rel == "" || rel == "." {
		return r.fd, nil
	}
	if r.cacheFD >= 0 && r.cacheRel == rel {
		return r.cacheFD, nil
	}
	fd, err := r.open(rel, unix.O_PATH|unix.O_DIRECTORY, false)
	if err != nil && mkdir && errors.Is(err, unix.ENOENT) {
		if err = r.mkdirAll(rel, uid, gid); err == nil {
			fd, err = r.open(rel, unix.O_PATH|unix.O_DIRECTORY, false)
		}
	}
	if err != nil {
		return -1, err
	}
	r.dropCache()
	r.cacheFD, r.cacheRel = fd, rel
	return fd, nil
}

// mkdirAll creates the missing directories of rel one component at a
// time, each parent resolved inside the root. A dangling symlink on the
// way has its target created inside the root, as if the root were "/".
func (r *root) mkdirAll(rel string, uid, gid int) error {
	return r.mkdirAllDepth(rel, uid, gid, 0)
}

func (r *root) mkdirAllDepth(rel string, uid, gid, links int) error {
	parts := strings.Split(rel, "/")
	for i := range parts {
		parent, prefix := strings.Join(parts[:i], "/"), strings.Join(parts[:i+1], "/")
		fd, err := r.open(prefix, unix.O_PATH|unix.O_DIRECTORY, false)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		pfd, err := r.open(parent, unix.O_PATH|unix.O_DIRECTORY, false)
		if err != nil {
			return err
		}
		err = r.mkdirOne(pfd, parent, parts[i], uid, gid, links)
		unix.Close(pfd)
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *root) mkdirOne(pfd int, parent, name string, uid, gid, links int) error {
	err := unix.Mkdirat(pfd, name, 0o755)
	if err == nil {
		if err = unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			err = chmodAt(pfd, name, 0o755)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mkdir %q in %s: %w", path.Join(parent, name), r.path, err)
	}
	if err == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return nil // another type: the caller's open reports it
	}
	if links >= 40 {
		return fmt.Errorf("mkdir %q in %s: %w", path.Join(parent, name), r.path, unix.ELOOP)
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(pfd, name, buf)
	if err != nil {
		return err
	}
	target := string(buf[:n])
	if !strings.HasPrefix(target, "/") {
		target = path.Join(parent, target)
	}
	// cleanRel keeps the target inside the root, whatever it says.
	return r.mkdirAllDepth(cleanRel(target), uid, gid, links+1)
}

// procPath names entry name of directory fd dirfd through /proc, for the
// calls that have no *at form (lsetxattr, llistxattr). The directory is
// pinned by its descriptor and the last component is not followed by the
// l* calls.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// chmodAt changes the mode of name in dirfd without following a symlink.
func chmodAt(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	// No fchmodat2 (Linux < 6.6): pin the inode with O_PATH, check it is
	// not a symlink, and chmod it through its /proc/self/fd link.
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// removeAt removes name from dirfd, recursively for a directory, without
// following symlinks anywhere.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := removeChildren(fd); err != nil {
		unix.Close(fd)
		return err
	}
	unix.Close(fd)
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// removeChildren empties the directory open as fd (O_RDONLY).
func removeChildren(fd int) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			return fmt.Errorf("remove %s: %w", n, err)
		}
	}
	return nil
}

// readDirNames lists the directory open as fd (O_RDONLY). fd stays open.
func readDirNames(fd int) ([]string, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	if _, err := unix.Seek(dup, 0, 0); err != nil {
		return nil, err
	}
	return f.Readdirnames(-1)
}
