package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
	xattrPAXPrefix = "SCHILY.xattr."
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Apply extracts the layer tar read from r into the directory dst, which
// must exist, and returns the number of bytes of file content written.
// Nothing outside dst is ever created, changed or removed (see the package
// comment). On error dst may hold part of the layer; the caller discards it.
func Apply(dst string, r io.Reader, opts ApplyOptions) (int64, error) {
	rt, err := openRoot(dst)
	if err != nil {
		return 0, err
	}
	defer rt.close()
	a := &applier{root: rt, opts: opts, written: map[string]bool{}}
	a.rootUID, a.rootGID, err = opts.IDMap.ToHost(0, 0)
	if err != nil {
		return 0, fmt.Errorf("map root: %w", err)
	}
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	// Where the last entry's data (with padding) ends; -1 when unknown
	// (sparse files). At least one zero block must follow it.
	var dataEnd int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if dataEnd >= 0 && cr.n < dataEnd+512 {
				return a.size, fmt.Errorf("read layer tar: truncated: the stream ends after %d bytes without an end-of-archive marker", cr.n)
			}
			break
		}
		if err != nil {
			return a.size, fmt.Errorf("read layer tar (truncated or corrupt) after %d bytes: %w", cr.n, err)
		}
		dataEnd = cr.n
		switch {
		case isSparse(hdr):
			dataEnd = -1
		case !headerOnly(hdr.Typeflag):
			dataEnd += (hdr.Size + 511) &^ 511
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.size, fmt.Errorf("apply %q: %w", hdr.Name, err)
		}
	}
	if err := a.finish(); err != nil {
		return a.size, err
	}
	return a.size, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func headerOnly(t byte) bool {
	switch t {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

type dirTime struct {
	rel          string
	atime, mtime time.Time
}

type applier struct {
	root             *root
	opts             ApplyOptions
	rootUID, rootGID int
	size             int64
	// Paths this layer wrote: whiteouts and opaque markers only hide
	// what lower layers hold.
	written  map[string]bool
	dirTimes []dirTime
}

func (a *applier) parent(rel string, create bool) (int, error) {
	return a.root.dir(rel, create, a.rootUID, a.rootGID)
}

func (a *applier) entry(hdr *tar.Header, data io.Reader) error {
	rel := cleanRel(hdr.Name)
	parentRel, base := path.Dir(rel), path.Base(rel)
	if parentRel == "." {
		parentRel = ""
	}
	uid, gid, err := a.opts.IDMap.ToHost(hdr.Uid, hdr.Gid)
	if err != nil {
		return err
	}
	if rel != "" && strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(parentRel, base, uid, gid)
	}
	if rel == "" {
		// The layer's root ("./"): only a directory's metadata applies.
		if hdr.Typeflag != tar.TypeDir {
			return nil
		}
		fd, err := a.root.open("", unix.O_RDONLY|unix.O_DIRECTORY, true)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := setFdMeta(fd, hdr, uid, gid); err != nil {
			return err
		}
		a.dirTimes = append(a.dirTimes, dirTime{rel, hdr.AccessTime, hdr.ModTime})
		return nil
	}
	if (hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock) && a.opts.SkipDevices {
		return nil
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}

	pfd, err := a.parent(parentRel, true)
	if err != nil {
		return err
	}
	// Whatever is in the way goes, except a directory that a directory
	// entry merely updates.
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
			if err := removeAt(pfd, base); err != nil {
				return fmt.Errorf("remove existing %q: %w", rel, err)
			}
			a.root.dropCache()
			if pfd, err = a.parent(parentRel, false); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("stat %q: %w", rel, err)
	}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		err = a.regular(pfd, base, hdr, data, uid, gid)
	case tar.TypeDir:
		err = a.directory(pfd, base, hdr, uid, gid)
		a.dirTimes = append(a.dirTimes, dirTime{rel, hdr.AccessTime, hdr.ModTime})
	case tar.TypeSymlink:
		if err = unix.Symlinkat(hdr.Linkname, pfd, base); err == nil {
			err = setAtMeta(pfd, base, hdr, uid, gid, false)
		}
	case tar.TypeLink:
		err = a.hardlink(pfd, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err = unix.Mknodat(pfd, base, mode|0o600, dev); err == nil {
			err = setAtMeta(pfd, base, hdr, uid, gid, true)
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	a.written[rel] = true
	return nil
}

func (a *applier) regular(pfd int, base string, hdr *tar.Header, data io.Reader, uid, gid int) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(fileWriter{f}, data, *bp)
	copyBufs.Put(bp)
	a.size += n
	if err != nil {
		return fmt.Errorf("write content (truncated or corrupt stream?): %w", err)
	}
	if err := setFdMeta(fd, hdr, uid, gid); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr.AccessTime, hdr.ModTime)
}

// fileWriter hides os.File's ReadFrom, which would only fall back to a
// generic copy with its own small buffer.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

func (a *applier) directory(pfd int, base string, hdr *tar.Header, uid, gid int) error {
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	return setFdMeta(fd, hdr, uid, gid)
}

func (a *applier) hardlink(pfd int, base string, hdr *tar.Header) error {
	target := cleanRel(hdr.Linkname)
	if target == "" {
		return fmt.Errorf("hard link to the layer root")
	}
	tparent, tbase := path.Dir(target), path.Base(target)
	// A descriptor of its own: pfd lives in the one-entry cache.
	tfd, err := a.root.open(tparent, unix.O_PATH|unix.O_DIRECTORY, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	// Flags 0: a symlink as target is linked itself, never followed.
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
	}
	return nil
}

func (a *applier) whiteout(parentRel, base string, uid, gid int) error {
	if a.opts.Whiteouts == WhiteoutOverlay {
		return a.overlayWhiteout(parentRel, base, uid, gid)
	}
	if base == opaqueMarker {
		fd, err := a.root.open(parentRel, unix.O_RDONLY|unix.O_DIRECTORY, true)
		if err != nil {
			return fmt.Errorf("opaque directory: %w", err)
		}
		defer unix.Close(fd)
		a.root.dropCache()
		return a.removeLower(fd, parentRel)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other aufs metadata: nothing to apply
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid whiteout %q", base)
	}
	if a.written[path.Join(parentRel, name)] {
		return nil // a whiteout hides lower layers only
	}
	pfd, err := a.parent(parentRel, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	err = removeAt(pfd, name)
	a.root.dropCache()
	if err != nil {
		return fmt.Errorf("whiteout %q: %w", path.Join(parentRel, name), err)
	}
	return nil
}

// removeLower removes everything under the directory fd (at rel) that
// this layer did not write.
func (a *applier) removeLower(fd int, rel string) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(rel, n)
		if !a.written[child] {
			if err := removeAt(fd, n); err != nil {
				return fmt.Errorf("remove %q: %w", child, err)
			}
			continue
		}
		cfd, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue
		}
		if err != nil {
			return err
		}
		err = a.removeLower(cfd, child)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) opaqueXattr() string {
	if a.opts.UserXattr {
		return "user.overlay.opaque"
	}
	return "trusted.overlay.opaque"
}

func (a *applier) overlayWhiteout(parentRel, base string, uid, gid int) error {
	if base == opaqueMarker {
		if _, err := a.parent(parentRel, true); err != nil {
			return err
		}
		fd, err := a.root.open(parentRel, unix.O_RDONLY|unix.O_DIRECTORY, true)
		if err != nil {
			return fmt.Errorf("opaque directory: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, a.opaqueXattr(), []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %q opaque: %w", parentRel, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid whiteout %q", base)
	}
	if a.written[path.Join(parentRel, name)] {
		return nil
	}
	pfd, err := a.parent(parentRel, true)
	if err != nil {
		return err
	}
	if err := removeAt(pfd, name); err != nil {
		return err
	}
	a.root.dropCache()
	if pfd, err = a.parent(parentRel, false); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("create overlay whiteout: %w", err)
	}
	if err := unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown overlay whiteout: %w", err)
	}
	return nil
}

// finish sets directory times, deepest first, now that their children
// are written.
func (a *applier) finish() error {
	sort.SliceStable(a.dirTimes, func(i, j int) bool {
		return strings.Count(a.dirTimes[i].rel, "/") > strings.Count(a.dirTimes[j].rel, "/")
	})
	for _, d := range a.dirTimes {
		if d.rel == "" {
			p := fmt.Sprintf("/proc/self/fd/%d", a.root.fd)
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, timespecs(d.atime, d.mtime), 0); err != nil {
				return fmt.Errorf("set times of the layer root: %w", err)
			}
			continue
		}
		parentRel := path.Dir(d.rel)
		if parentRel == "." {
			parentRel = ""
		}
		pfd, err := a.parent(parentRel, false)
		if err == nil {
			err = setTimes(pfd, path.Base(d.rel), d.atime, d.mtime)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set times of %q: %w", d.rel, err)
		}
	}
	return nil
}

// setFdMeta sets owner, mode and xattrs through an open descriptor.
// The mode comes after chown, which clears setuid and setgid bits, and
// xattrs after both (chown drops security.capability).
func setFdMeta(fd int, hdr *tar.Header, uid, gid int) error {
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
	}
	if err := unix.Fchmod(fd, tarMode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return nil
}

// setAtMeta sets owner, mode (unless symlink), xattrs and times of name
// in pfd, never following a symlink.
func setAtMeta(pfd int, name string, hdr *tar.Header, uid, gid int, chmod bool) error {
	if err := unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
	}
	if chmod {
		if err := chmodAt(pfd, name, tarMode(hdr)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range xattrs(hdr) {
		if err := unix.Lsetxattr(procPath(pfd, name), k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return setTimes(pfd, name, hdr.AccessTime, hdr.ModTime)
}

func setTimes(pfd int, name string, atime, mtime time.Time) error {
	if err := unix.UtimesNanoAt(pfd, name, timespecs(atime, mtime), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func timespecs(atime, mtime time.Time) []unix.Timespec {
	if atime.IsZero() {
		atime = mtime
	}
	return []unix.Timespec{
		{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())},
		{Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())},
	}
}

// tarMode keeps permission, setuid, setgid and sticky bits.
func tarMode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

// xattrs returns the entry's xattrs, without overlayfs' own: a layer must
// not be able to plant redirects or opaque marks in an upper directory.
func xattrs(hdr *tar.Header) map[string]string {
	var m map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok || isOverlayXattr(name) {
			continue
		}
		if m == nil {
			m = map[string]string{}
		}
		m[name] = v
	}
	return m
}

func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}
