package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteOverlayDiff writes the overlayfs upper directory upper as a layer
// tar to w: whiteout devices (0/0 character devices) become ".wh.<name>"
// entries and directories marked opaque (trusted.overlay.opaque or
// user.overlay.opaque = "y") get a ".wh..wh..opq" entry. overlayfs' own
// xattrs are left out. The tree is read through descriptors, never
// following a symlink, so a container changing it meanwhile cannot make
// this read anything outside it.
func WriteOverlayDiff(w io.Writer, upper string, opts DiffOptions) error {
	fd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", upper, err)
	}
	defer unix.Close(fd)
	tw := newTreeWriter(w, opts)
	if err := tw.upperDir(fd, ""); err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("write layer tar: %w", err)
	}
	return nil
}

// WriteDiff writes the changes from the tree lower to the tree upper (two
// full trees, as the vfs driver keeps them) as a layer tar to w: new and
// changed entries, and ".wh.<name>" for what upper no longer has. An
// entry counts as changed when its type, mode, owner, size, mtime, link
// target, device number or xattrs differ, or, for a regular file whose
// mtime has no sub-second part, its content.
func WriteDiff(w io.Writer, lower, upper string, opts DiffOptions) error {
	lfd, err := unix.Open(lower, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", lower, err)
	}
	defer unix.Close(lfd)
	ufd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", upper, err)
	}
	defer unix.Close(ufd)
	tw := newTreeWriter(w, opts)
	if err := tw.diffDir(lfd, ufd, ""); err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("write layer tar: %w", err)
	}
	return nil
}

type devIno struct{ dev, ino uint64 }

type treeWriter struct {
	tw    *tar.Writer
	idmap *IDMap
	links map[devIno]string
	buf   []byte
}

func newTreeWriter(w io.Writer, opts DiffOptions) *treeWriter {
	return &treeWriter{tw: tar.NewWriter(w), idmap: opts.IDMap, links: map[devIno]string{}, buf: make([]byte, 256<<10)}
}

func sortedNames(fd int) ([]string, error) {
	names, err := readDirNames(fd)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func openSubdir(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

func (w *treeWriter) upperDir(fd int, rel string) error {
	names, err := sortedNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		child := path.Join(rel, n)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %q: %w", child, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			if err := w.whiteout(rel, n, &st); err != nil {
				return err
			}
			continue
		}
		if err := w.entry(fd, n, child, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		cfd, err := openSubdir(fd, n)
		if err != nil {
			return fmt.Errorf("open %q: %w", child, err)
		}
		if isOpaque(cfd) {
			err = w.tw.WriteHeader(&tar.Header{Name: path.Join(child, opaqueMarker), Typeflag: tar.TypeReg,
				ModTime: statTime(st.Mtim), Format: tar.FormatPAX})
		}
		if err == nil {
			err = w.upperDir(cfd, child)
		}
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

func isOpaque(fd int) bool {
	for _, x := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		b := make([]byte, 8)
		n, err := unix.Fgetxattr(fd, x, b)
		if err == nil && string(b[:n]) == "y" {
			return true
		}
	}
	return false
}

func (w *treeWriter) whiteout(rel, name string, st *unix.Stat_t) error {
	return w.tw.WriteHeader(&tar.Header{Name: path.Join(rel, whiteoutPrefix+name), Typeflag: tar.TypeReg,
		ModTime: statTime(st.Mtim), Format: tar.FormatPAX})
}

// tree writes the directory fd (at rel) and everything below it.
func (w *treeWriter) tree(fd int, rel string) error {
	names, err := sortedNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := w.entryAndTree(fd, n, path.Join(rel, n)); err != nil {
			return err
		}
	}
	return nil
}

func (w *treeWriter) entryAndTree(dirfd int, name, rel string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %q: %w", rel, err)
	}
	if err := w.entry(dirfd, name, rel, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	cfd, err := openSubdir(dirfd, name)
	if err != nil {
		return fmt.Errorf("open %q: %w", rel, err)
	}
	defer unix.Close(cfd)
	return w.tree(cfd, rel)
}

func (w *treeWriter) diffDir(lfd, ufd int, rel string) error {
	lnames, err := sortedNames(lfd)
	if err != nil {
		return err
	}
	unames, err := sortedNames(ufd)
	if err != nil {
		return err
	}
	inUpper := make(map[string]bool, len(unames))
	for _, n := range unames {
		inUpper[n] = true
	}
	for _, n := range lnames {
		if !inUpper[n] {
			var st unix.Stat_t
			if err := unix.Fstatat(lfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("stat lower %q: %w", path.Join(rel, n), err)
			}
			if err := w.whiteout(rel, n, &st); err != nil {
				return err
			}
		}
	}
	inLower := make(map[string]bool, len(lnames))
	for _, n := range lnames {
		inLower[n] = true
	}
	for _, n := range unames {
		child := path.Join(rel, n)
		if !inLower[n] {
			if err := w.entryAndTree(ufd, n, child); err != nil {
				return err
			}
			continue
		}
		var lst, ust unix.Stat_t
		if err := unix.Fstatat(lfd, n, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat lower %q: %w", child, err)
		}
		if err := unix.Fstatat(ufd, n, &ust, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %q: %w", child, err)
		}
		bothDirs := lst.Mode&unix.S_IFMT == unix.S_IFDIR && ust.Mode&unix.S_IFMT == unix.S_IFDIR
		changed, err := differs(lfd, ufd, n, &lst, &ust)
		if err != nil {
			return fmt.Errorf("compare %q: %w", child, err)
		}
		if !bothDirs {
			if changed {
				if err := w.entryAndTree(ufd, n, child); err != nil {
					return err
				}
			}
			continue
		}
		if changed {
			if err := w.entry(ufd, n, child, &ust); err != nil {
				return err
			}
		}
		clfd, err := openSubdir(lfd, n)
		if err != nil {
			return fmt.Errorf("open lower %q: %w", child, err)
		}
		cufd, err := openSubdir(ufd, n)
		if err != nil {
			unix.Close(clfd)
			return fmt.Errorf("open %q: %w", child, err)
		}
		err = w.diffDir(clfd, cufd, child)
		unix.Close(clfd)
		unix.Close(cufd)
		if err != nil {
			return err
		}
	}
	return nil
}

// differs reports whether name changed between the directories lfd and ufd.
func differs(lfd, ufd int, name string, l, u *unix.Stat_t) (bool, error) {
	if l.Mode != u.Mode || l.Uid != u.Uid || l.Gid != u.Gid || l.Rdev != u.Rdev {
		return true, nil
	}
	isDir := u.Mode&unix.S_IFMT == unix.S_IFDIR
	if !isDir && (l.Size != u.Size || l.Mtim != u.Mtim) {
		return true, nil
	}
	lx, err := readXattrs(lfd, name)
	if err != nil {
		return false, err
	}
	ux, err := readXattrs(ufd, name)
	if err != nil {
		return false, err
	}
	if len(lx) != len(ux) {
		return true, nil
	}
	for k, v := range lx {
		if uv, ok := ux[k]; !ok || uv != v {
			return true, nil
		}
	}
	if isDir {
		return l.Mtim != u.Mtim, nil
	}
	switch u.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		lt, err := readlinkAt(lfd, name)
		if err != nil {
			return false, err
		}
		ut, err := readlinkAt(ufd, name)
		return lt != ut, err
	case unix.S_IFREG:
		if u.Mtim.Nsec != 0 {
			return false, nil
		}
		// Whole-second mtimes (copies that lost precision): compare bytes.
		return contentDiffers(lfd, ufd, name)
	}
	return false, nil
}

func contentDiffers(lfd, ufd int, name string) (bool, error) {
	open := func(dfd int) (*os.File, error) {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), name), nil
	}
	lf, err := open(lfd)
	if err != nil {
		return false, err
	}
	defer lf.Close()
	uf, err := open(ufd)
	if err != nil {
		return false, err
	}
	defer uf.Close()
	lb, ub := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		ln, lerr := io.ReadFull(lf, lb)
		un, uerr := io.ReadFull(uf, ub)
		if ln != un || !bytes.Equal(lb[:ln], ub[:un]) {
			return true, nil
		}
		lend := lerr == io.EOF || lerr == io.ErrUnexpectedEOF
		uend := uerr == io.EOF || uerr == io.ErrUnexpectedEOF
		if lerr != nil && !lend {
			return false, lerr
		}
		if uerr != nil && !uend {
			return false, uerr
		}
		if lend || uend {
			return lend != uend, nil
		}
	}
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
}

// readXattrs reads the xattrs of name in dirfd (not following a symlink),
// without overlayfs' own.
func readXattrs(dirfd int, name string) (map[string]string, error) {
	p := procPath(dirfd, name)
	sz, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	if sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	m := map[string]string{}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if k == "" || isOverlayXattr(k) {
			continue
		}
		vsz, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", k, err)
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, k, v); err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", k, err)
		}
		m[k] = string(v[:vsz])
	}
	return m, nil
}

func statTime(ts unix.Timespec) time.Time { return time.Unix(ts.Sec, ts.Nsec) }

// entry writes the header (and content) of name in dirfd, at rel.
func (w *treeWriter) entry(dirfd int, name, rel string, st *unix.Stat_t) error {
	uid, gid := w.idmap.toContainerOrOverflow(int(st.Uid), int(st.Gid))
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     uid,
		Gid:     gid,
		ModTime: statTime(st.Mtim),
		Format:  tar.FormatPAX,
	}
	xs, err := readXattrs(dirfd, name)
	if err != nil {
		return fmt.Errorf("%q: %w", rel, err)
	}
	for k, v := range xs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[xattrPAXPrefix+k] = v
	}
	var content *os.File
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = readlinkAt(dirfd, name); err != nil {
			return fmt.Errorf("readlink %q: %w", rel, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil // sockets do not belong in a layer
	case unix.S_IFREG:
		key := devIno{st.Dev, st.Ino}
		if st.Nlink > 1 {
			if first, ok := w.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			w.links[key] = rel
		}
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %q: %w", rel, err)
		}
		content = os.NewFile(uintptr(fd), name)
		defer content.Close()
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			return fmt.Errorf("stat %q: %w", rel, err)
		}
		if fst.Ino != st.Ino || fst.Dev != st.Dev {
			return fmt.Errorf("%q changed while being read", rel)
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, fst.Size
	default:
		return fmt.Errorf("%q: unsupported file type %#o", rel, st.Mode&unix.S_IFMT)
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header of %q: %w", rel, err)
	}
	if content != nil {
		if _, err := io.CopyBuffer(w.tw, io.LimitReader(content, hdr.Size), w.buf); err != nil {
			return fmt.Errorf("write %q: %w", rel, err)
		}
	}
	return nil
}

// WriteTree writes everything below the open directory dir as a tar to w,
// names relative to dir. The tree is read through descriptors, never
// following a symlink, so its content cannot lead the read outside it.
func WriteTree(w io.Writer, dir *os.File, opts DiffOptions) error {
	tw := newTreeWriter(w, opts)
	if err := tw.tree(int(dir.Fd()), ""); err != nil {
		return fmt.Errorf("archive %s: %w", dir.Name(), err)
	}
	return tw.tw.Close()
}

// WriteEntry writes the entry name of the open directory dir (and, for a
// directory, everything below it) as a tar to w, its name in the tar being
// as. As with WriteTree, no symlink is ever followed.
func WriteEntry(w io.Writer, dir *os.File, name, as string, opts DiffOptions) error {
	tw := newTreeWriter(w, opts)
	if err := tw.entryAndTree(int(dir.Fd()), name, as); err != nil {
		return fmt.Errorf("archive %s: %w", name, err)
	}
	return tw.tw.Close()
}
