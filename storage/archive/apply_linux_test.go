package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestApplyDotDotAndAbsolutePathsStayInside(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	apply(t, s.dst, layer(t,
		file("../../etc/berth-x", "dotdot"),
		file("../../../../../../../../../../berth-x", "deep"),
		file("/etc/berth-abs", "abs"),
		file("a/../../../etc/passwd", "inner"),
		dir("/etc/berth-dir/"),
	), ApplyOptions{})
	s.check(t)
	for p, want := range map[string]string{"etc/berth-x": "dotdot", "berth-x": "deep", "etc/berth-abs": "abs", "etc/passwd": "inner"} {
		if got := readFile(t, filepath.Join(s.dst, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if st := lstat(t, filepath.Join(s.dst, "etc/berth-dir")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("etc/berth-dir is not a directory")
	}
}

func TestApplySymlinkCannotBeWrittenThrough(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	apply(t, s.dst, layer(t,
		symlink("evil", "/"),
		file("evil/etc/berth-x", "through root link"),
		symlink("up", "../../.."),
		file("up/etc/berth-x2", "through dotdot link"),
		symlink("abs", s.outside),
		file("abs/file", "through absolute link"),
		dir("abs/dir/"),
		symlink("f", filepath.Join(s.outside, "file")),
		file("f", "replaces the link"),
	), ApplyOptions{})
	s.check(t)
	if got := readFile(t, filepath.Join(s.dst, "etc/berth-x")); got != "through root link" {
		t.Errorf("evil/etc/berth-x did not land in dst/etc: %q", got)
	}
	if got := readFile(t, filepath.Join(s.dst, "etc/berth-x2")); got != "through dotdot link" {
		t.Errorf("up/etc/berth-x2 did not land in dst/etc: %q", got)
	}
	if got := readFile(t, filepath.Join(s.dst, s.outside, "file")); got != "through absolute link" {
		t.Errorf("abs/file did not land inside dst: %q", got)
	}
	if st := lstat(t, filepath.Join(s.dst, "evil")); st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("evil is no longer a symlink")
	}
	if st := lstat(t, filepath.Join(s.dst, "f")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("f was not replaced by a regular file")
	}
}

func TestApplySymlinkFromEarlierLayer(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	apply(t, s.dst, layer(t,
		symlink("evil", s.outside),
		symlink("up", "../.."),
		symlink("file", filepath.Join(s.outside, "file")),
		symlink("d", filepath.Join(s.outside, "dir")),
	), ApplyOptions{})
	apply(t, s.dst, layer(t,
		file("evil/file", "layer 2"),
		file("up/etc/passwd", "layer 2 up"),
		ent{name: "file", typ: tar.TypeReg, mode: 0o4777, body: "replaced"},
		ent{name: "d", typ: tar.TypeDir, mode: 0o777},
	), ApplyOptions{})
	s.check(t)
	if got := readFile(t, filepath.Join(s.dst, s.outside, "file")); got != "layer 2" {
		t.Errorf("evil/file = %q, want it inside dst", got)
	}
	if got := readFile(t, filepath.Join(s.dst, "etc/passwd")); got != "layer 2 up" {
		t.Errorf("up/etc/passwd = %q, want it at dst/etc/passwd", got)
	}
	if st := lstat(t, filepath.Join(s.dst, "d")); st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o7777 != 0o777 {
		t.Errorf("d: mode %o, want a directory 0777 in place of the link", st.Mode)
	}
}

func TestApplyHardLinks(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	for _, l := range [][]ent{
		{hardlink("h", "/etc/passwd")},
		{hardlink("h", "../outside/file")},
		{hardlink("h", "../../../../../../../../etc/passwd")},
		{symlink("evil", "/"), hardlink("h", "evil/etc/passwd")},
	} {
		_, err := Apply(s.dst, bytes.NewReader(layer(t, l...)), ApplyOptions{})
		if !errors.Is(err, unix.ENOENT) {
			t.Errorf("hard link %q with no such file in dst: err = %v, want ENOENT", l[len(l)-1].link, err)
		}
		s.check(t)
	}

	// With dst/etc/passwd present, the same links point at it, never at the host's.
	apply(t, s.dst, layer(t,
		file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		hardlink("h1", "/etc/passwd"),
		hardlink("h2", "../../../etc/passwd"),
		symlink("evil", "/"),
		hardlink("h3", "evil/etc/passwd"),
		symlink("s", "/etc/passwd"),
		hardlink("h4", "s"),
	), ApplyOptions{})
	s.check(t)
	in := lstat(t, filepath.Join(s.dst, "etc/passwd"))
	for _, h := range []string{"h1", "h2", "h3"} {
		if st := lstat(t, filepath.Join(s.dst, h)); st.Ino != in.Ino {
			t.Errorf("%s: inode %d, want dst/etc/passwd's %d", h, st.Ino, in.Ino)
		}
	}
	if st := lstat(t, filepath.Join(s.dst, "h4")); st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("h4 (hard link to a symlink) is not the symlink itself: mode %o", st.Mode)
	}
	if in.Nlink != 4 {
		t.Errorf("dst/etc/passwd has %d links, want 4", in.Nlink)
	}
}

func TestApplyDevicesAndFifos(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	l := layer(t,
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		ent{name: "dev/loop-berth", typ: tar.TypeBlock, mode: 0o660, major: 7, minor: 200, gid: 6},
		ent{name: "run/fifo", typ: tar.TypeFifo, mode: 0o620},
	)
	apply(t, s.dst, l, ApplyOptions{})
	s.check(t)
	for _, c := range []struct {
		p            string
		typ, mode    uint32
		major, minor uint32
		gid          uint32
	}{
		{"dev/null", unix.S_IFCHR, 0o666, 1, 3, 0},
		{"dev/loop-berth", unix.S_IFBLK, 0o660, 7, 200, 6},
		{"run/fifo", unix.S_IFIFO, 0o620, 0, 0, 0},
	} {
		st := lstat(t, filepath.Join(s.dst, c.p))
		if st.Mode&unix.S_IFMT != c.typ || st.Mode&0o7777 != c.mode || unix.Major(st.Rdev) != c.major || unix.Minor(st.Rdev) != c.minor || st.Gid != c.gid {
			t.Errorf("%s: mode %o rdev %d:%d gid %d, want type %o mode %o rdev %d:%d gid %d",
				c.p, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Gid, c.typ, c.mode, c.major, c.minor, c.gid)
		}
	}

	skip := filepath.Join(s.base, "skip")
	if err := os.Mkdir(skip, 0o755); err != nil {
		t.Fatal(err)
	}
	apply(t, skip, l, ApplyOptions{SkipDevices: true})
	assertMissing(t, filepath.Join(skip, "dev/null"))
	assertMissing(t, filepath.Join(skip, "dev/loop-berth"))
	if st := lstat(t, filepath.Join(skip, "run/fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo not created with SkipDevices")
	}
}

func TestApplyKeepsModesOwnersXattrsAndTimes(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	// A v2 file capability: cap_net_bind_service, effective.
	fcap := string([]byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	apply(t, s.dst, layer(t,
		ent{name: "bin/", typ: tar.TypeDir, mode: 0o750, uid: 7, gid: 8},
		ent{name: "bin/su", typ: tar.TypeReg, mode: 0o4755, body: "su"},
		ent{name: "bin/wall", typ: tar.TypeReg, mode: 0o2755, uid: 0, gid: 5, body: "wall"},
		ent{name: "bin/ping", typ: tar.TypeReg, mode: 0o755, body: "ping", xattrs: map[string]string{"security.capability": fcap}},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		ent{name: "home/app/work/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		ent{name: "home/app/work/f", typ: tar.TypeReg, mode: 0o640, uid: 1000, gid: 1000, body: "x",
			xattrs: map[string]string{"user.berth": "kept", "trusted.overlay.opaque": "y"}},
		ent{name: "home/app/l", typ: tar.TypeSymlink, link: "work", uid: 1000, gid: 1001},
	), ApplyOptions{})
	s.check(t)
	for _, c := range []struct {
		p        string
		mode     uint32
		uid, gid uint32
	}{
		{"bin", 0o750, 7, 8}, {"bin/su", 0o4755, 0, 0}, {"bin/wall", 0o2755, 0, 5}, {"tmp", 0o1777, 0, 0},
		{"home/app/work", 0o700, 1000, 1000}, {"home/app/work/f", 0o640, 1000, 1000}, {"home/app/l", 0o777, 1000, 1001},
		{"home", 0o755, 0, 0},
	} {
		st := lstat(t, filepath.Join(s.dst, c.p))
		if st.Mode&0o7777 != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: mode %o %d:%d, want %o %d:%d", c.p, st.Mode&0o7777, st.Uid, st.Gid, c.mode, c.uid, c.gid)
		}
		if c.p != "home" && (st.Mtim.Sec != testTime.Unix()) {
			t.Errorf("%s: mtime %d, want %d", c.p, st.Mtim.Sec, testTime.Unix())
		}
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(s.dst, "bin/ping"), "security.capability", buf)
	if err != nil || string(buf[:n]) != fcap {
		t.Errorf("security.capability: %q, %v", buf[:max(n, 0)], err)
	}
	n, err = unix.Lgetxattr(filepath.Join(s.dst, "home/app/work/f"), "user.berth", buf)
	if err != nil || string(buf[:n]) != "kept" {
		t.Errorf("user.berth: %q, %v", buf[:max(n, 0)], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(s.dst, "home/app/work/f"), "trusted.overlay.opaque", buf); err == nil {
		t.Errorf("an overlay xattr from the tar was applied")
	}
}

func TestApplyIDMap(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	m := &IDMap{
		UIDs: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GIDs: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}},
	}
	apply(t, s.dst, layer(t,
		ent{name: "a/b/f", typ: tar.TypeReg, mode: 0o644, uid: 1000, gid: 1001, body: "x"},
		ent{name: "a/b/l", typ: tar.TypeSymlink, link: "f", uid: 5, gid: 6},
	), ApplyOptions{IDMap: m})
	s.check(t)
	for p, want := range map[string][2]uint32{"a/b/f": {101000, 201001}, "a/b/l": {100005, 200006}, "a": {100000, 200000}} {
		st := lstat(t, filepath.Join(s.dst, p))
		if st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, want[0], want[1])
		}
	}
	_, err := Apply(s.dst, bytes.NewReader(layer(t, ent{name: "g", typ: tar.TypeReg, uid: 70000})), ApplyOptions{IDMap: m})
	if err == nil || !strings.Contains(err.Error(), "uid 70000") {
		t.Errorf("unmapped uid: err = %v", err)
	}
}

// lowerLayer and upperLayer exercise whiteouts and opaque directories.
func lowerLayer(t *testing.T) []byte {
	return layer(t,
		dir("a/"), file("a/x", "x"), file("a/y", "y"),
		dir("d/"), dir("d/sub/"), file("d/sub/z", "z"), file("d/old", "old"),
		dir("gone/"), file("gone/f", "f"), file("keep", "keep"),
	)
}

func upperLayer(t *testing.T) []byte {
	return layer(t,
		file(".wh.gone", ""),
		file("a/.wh.x", ""),
		dir("d/"),
		file("d/early", "written before the marker"),
		file("d/.wh..wh..opq", ""),
		dir("d/sub/"),
		file("d/sub/new", "new"),
		file("n/.wh.nothing", ""),
	)
}

func checkMerged(t *testing.T, root string) {
	t.Helper()
	assertMissing(t, filepath.Join(root, "gone"))
	assertMissing(t, filepath.Join(root, "a/x"))
	assertMissing(t, filepath.Join(root, "d/old"))
	assertMissing(t, filepath.Join(root, "d/sub/z"))
	for p, want := range map[string]string{"a/y": "y", "keep": "keep", "d/early": "written before the marker", "d/sub/new": "new"} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	names, _ := os.ReadDir(filepath.Join(root, "d"))
	if len(names) != 2 {
		t.Errorf("opaque d holds %d entries, want early and sub", len(names))
	}
}

func TestApplyWhiteoutsDelete(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	apply(t, s.dst, lowerLayer(t), ApplyOptions{})
	apply(t, s.dst, upperLayer(t), ApplyOptions{})
	s.check(t)
	checkMerged(t, s.dst)
	// Whiteouts never reach outside either.
	apply(t, s.dst, layer(t, file("../../.wh.etc", ""), file("/../.wh.outside", ""), symlink("o", s.outside), file("o/.wh.file", "")), ApplyOptions{})
	s.check(t)
	if _, err := Apply(s.dst, bytes.NewReader(layer(t, file(".wh..", ""))), ApplyOptions{}); err == nil {
		t.Errorf("whiteout of \"..\" applied without error")
	}
	s.check(t)
}

func TestApplyWhiteoutsOverlay(t *testing.T) {
	requireRoot(t)
	for _, userx := range []bool{false, true} {
		s := newSandbox(t)
		apply(t, s.dst, upperLayer(t), ApplyOptions{Whiteouts: WhiteoutOverlay, UserXattr: userx})
		s.check(t)
		for _, p := range []string{"gone", "a/x", "n/nothing"} {
			st := lstat(t, filepath.Join(s.dst, p))
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("%s: mode %o rdev %d, want a 0/0 character device", p, st.Mode, st.Rdev)
			}
		}
		x := "trusted.overlay.opaque"
		if userx {
			x = "user.overlay.opaque"
		}
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(s.dst, "d"), x, buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Errorf("d: %s = %q, %v; want y", x, buf[:max(n, 0)], err)
		}
		if _, err := unix.Lgetxattr(filepath.Join(s.dst, "d/sub"), x, buf); err == nil {
			t.Errorf("d/sub marked opaque")
		}
	}
}

func TestApplyTruncatedOrCorrupt(t *testing.T) {
	requireRoot(t)
	full := layer(t, dir("d/"), file("d/f", strings.Repeat("content ", 300)), symlink("d/l", "f"), file("e", ""))
	end := len(full) - 1024 // where the end-of-archive marker starts
	for cut := 0; cut <= end; cut += 37 {
		for _, c := range []int{cut, min(cut+1, end)} {
			dst := filepath.Join(t.TempDir(), "berth-dst")
			os.Mkdir(dst, 0o755)
			if _, err := Apply(dst, bytes.NewReader(full[:c]), ApplyOptions{}); err == nil {
				t.Fatalf("stream cut at %d of %d bytes applied without error", c, len(full))
			} else if !strings.Contains(err.Error(), "truncated") && !strings.Contains(err.Error(), "unexpected EOF") {
				t.Errorf("cut at %d: unclear error %v", c, err)
			}
		}
	}
	corrupt := bytes.Clone(full)
	copy(corrupt[512*7+10:], "garbage garbage garbage") // in the header of d/l
	dst := t.TempDir()
	if _, err := Apply(dst, bytes.NewReader(corrupt), ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt header: err = %v", err)
	}
	if _, err := Apply(t.TempDir(), bytes.NewReader(full), ApplyOptions{}); err != nil {
		t.Errorf("whole stream: %v", err)
	}
}
