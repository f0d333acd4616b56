package vfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// copyTree copies the tree at src to dst (which must not exist), keeping
// types, modes (with setuid, setgid, sticky), owners, xattrs, hard links,
// device nodes and times. It never follows a symlink of src. src is a
// committed snapshot, which nothing changes meanwhile.
func copyTree(src, dst string) error {
	c := &copier{links: map[inode]string{}, buf: make([]byte, 128<<10)}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("copy %s: not a directory", src)
	}
	return c.copy(src, dst, &st)
}

type inode struct{ dev, ino uint64 }

type copier struct {
	links map[inode]string
	buf   []byte
}

func (c *copier) copy(src, dst string, st *unix.Stat_t) error {
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		k := inode{uint64(st.Dev), st.Ino}
		if first, ok := c.links[k]; ok {
			if err := os.Link(first, dst); err != nil {
				return fmt.Errorf("copy %s: %w", src, err)
			}
			return nil
		}
		c.links[k] = dst
	}
	switch typ {
	case unix.S_IFDIR:
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return fmt.Errorf("copy %s: mkdir: %w", src, err)
		}
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		for _, n := range names {
			var cst unix.Stat_t
			sp := filepath.Join(src, n)
			if err := unix.Lstat(sp, &cst); err != nil {
				return fmt.Errorf("copy %s: %w", sp, err)
			}
			if err := c.copy(sp, filepath.Join(dst, n), &cst); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		if err := c.file(src, dst); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	default: // devices, FIFOs, sockets
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("copy %s: mknod: %w", src, err)
		}
	}
	if err := meta(src, dst, st); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

func (c *copier) file(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// A reflink where the filesystem shares extents; else
	// copy_file_range (io.Copy between files), else read/write.
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		if _, err := io.CopyBuffer(out, in, c.buf); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// meta gives dst the owner, xattrs, mode and times of src. chown comes
// first: it clears setuid/setgid bits and file capabilities.
func meta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil
		}
		return fmt.Errorf("list xattrs: %w", err)
	}
	if size == 0 {
		return nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(src, buf)
	if err != nil {
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, name := range splitNul(buf[:size]) {
		vsize, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return fmt.Errorf("read xattr %s: %w", name, err)
		}
		val := make([]byte, vsize)
		vsize, err = unix.Lgetxattr(src, name, val)
		if err != nil {
			return fmt.Errorf("read xattr %s: %w", name, err)
		}
		if err := unix.Lsetxattr(dst, name, val[:vsize], 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
