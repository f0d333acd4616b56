package vfs

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// copyTree keeps what a root filesystem needs: hard links, xattrs
// (including file capabilities, which chown would clear), setuid bits,
// owners, devices, FIFOs, sockets, symlinks and nanosecond times.
func TestCopyTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown, mknod and trusted xattrs need root")
	}
	base, err := os.MkdirTemp("", "berth-vfs-copy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(src+"/dir/sub", 0o755))
	must(os.WriteFile(src+"/dir/f", []byte("content"), 0o644))
	must(os.Link(src+"/dir/f", src+"/hard"))
	must(os.WriteFile(src+"/suid", []byte("s"), 0o755))
	must(os.Chown(src+"/suid", 0, 0))
	must(unix.Chmod(src+"/suid", 0o4755))
	must(os.WriteFile(src+"/cap", []byte("c"), 0o755))
	must(os.Chown(src+"/cap", 1000, 1000))
	// security.capability v2 for cap_net_bind_service, permitted.
	capv2 := []byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	must(unix.Setxattr(src+"/cap", "security.capability", capv2, 0))
	must(unix.Setxattr(src+"/dir/f", "user.berth", []byte("u"), 0))
	must(unix.Setxattr(src+"/dir", "trusted.berth", []byte("t"), 0))
	must(unix.Mknod(src+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(src+"/fifo", 0o600))
	l, err := net.Listen("unix", src+"/sock")
	must(err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	must(os.Symlink("/nowhere", src+"/dangling"))
	must(os.Lchown(src+"/dangling", 7, 8))
	must(os.Chown(src+"/dir/sub", 1000, 1001))
	must(os.Chmod(src+"/dir/sub", 0o1777))
	mt := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for _, p := range []string{"dir/f", "dir/sub", "dir", "null"} {
		must(os.Chtimes(filepath.Join(src, p), mt, mt))
	}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, src+"/dangling", []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW))

	must(copyTree(src, dst))

	stat := func(p string) unix.Stat_t {
		var st unix.Stat_t
		must(unix.Lstat(p, &st))
		return st
	}
	for _, p := range []string{"dir", "dir/f", "dir/sub", "suid", "cap", "null", "fifo", "sock", "dangling"} {
		s, d := stat(filepath.Join(src, p)), stat(filepath.Join(dst, p))
		if s.Mode != d.Mode || s.Uid != d.Uid || s.Gid != d.Gid || s.Rdev != d.Rdev || s.Size != d.Size || s.Mtim != d.Mtim {
			t.Errorf("/%s: mode %o uid %d gid %d rdev %d size %d mtime %v, want %o %d %d %d %d %v",
				p, d.Mode, d.Uid, d.Gid, d.Rdev, d.Size, d.Mtim, s.Mode, s.Uid, s.Gid, s.Rdev, s.Size, s.Mtim)
		}
	}
	if a, b := stat(dst+"/dir/f"), stat(dst+"/hard"); a.Ino != b.Ino {
		t.Errorf("/hard is not a hard link of /dir/f in the copy")
	}
	if b, _ := os.ReadFile(dst + "/dir/f"); string(b) != "content" {
		t.Errorf("/dir/f = %q", b)
	}
	for p, x := range map[string]string{"cap": "security.capability", "dir/f": "user.berth", "dir": "trusted.berth"} {
		want := make([]byte, 64)
		n, _ := unix.Lgetxattr(filepath.Join(src, p), x, want)
		got := make([]byte, 64)
		m, err := unix.Lgetxattr(filepath.Join(dst, p), x, got)
		if err != nil || string(got[:m]) != string(want[:n]) {
			t.Errorf("/%s %s = %q (%v), want %q", p, x, got[:max(m, 0)], err, want[:n])
		}
	}
	if l, err := os.Readlink(dst + "/dangling"); err != nil || l != "/nowhere" {
		t.Errorf("/dangling -> %q (%v)", l, err)
	}
	// The destination must not exist.
	if err := copyTree(src, dst); err == nil {
		t.Errorf("copy onto an existing tree: no error")
	}
}
