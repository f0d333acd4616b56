package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// requireRoot skips (or, in CI, fails) a test that needs root.
func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "it creates devices and chowns files")
}

// ent describes one tar entry of a crafted layer.
type ent struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
	major, minor     int64
	xattrs           map[string]string
}

func file(name, body string) ent { return ent{name: name, body: body, typ: tar.TypeReg, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, link: target, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeLink} }

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// layer builds an uncompressed layer tar.
func layer(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, Devmajor: e.major, Devminor: e.minor, ModTime: testTime, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("write header %s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a directory tree with dst deep inside it and sentinel
// files around it, so that an escape through "..", an absolute path or a
// symlink lands somewhere the test looks.
type sandbox struct {
	base, dst, outside string
	before             map[string]string
	hostBefore         map[string]string
}

// hostWatch are host paths a layer tries to reach.
var hostWatch = []string{"/etc/passwd", "/etc/berth-x", "/berth-x", "/etc/berth-dir"}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	base, err := os.MkdirTemp("", "berth-archive-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	s := &sandbox{base: base, dst: filepath.Join(base, "a", "b", "dst"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{s.dst, filepath.Join(base, "a", "etc"), filepath.Join(s.outside, "dir"), filepath.Join(base, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(s.outside, "file"), filepath.Join(base, "a", "etc", "passwd"), filepath.Join(base, "etc", "passwd")} {
		if err := os.WriteFile(f, []byte("sentinel\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.before = snapshot(t, base, s.dst)
	s.hostBefore = hostState(t)
	return s
}

// check fails the test if anything outside dst appeared or changed.
func (s *sandbox) check(t *testing.T) {
	t.Helper()
	diffStates(t, "sandbox around dst", s.before, snapshot(t, s.base, s.dst))
	diffStates(t, "host", s.hostBefore, hostState(t))
}

func diffStates(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var bad []string
	for p, v := range after {
		if b, ok := before[p]; !ok {
			bad = append(bad, "new: "+p)
		} else if b != v {
			bad = append(bad, fmt.Sprintf("changed: %s (%s -> %s)", p, b, v))
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			bad = append(bad, "removed: "+p)
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Fatalf("%s changed outside the layer directory:\n%s", what, strings.Join(bad, "\n"))
	}
}

func hostState(t testing.TB) map[string]string {
	m := map[string]string{}
	for _, p := range hostWatch {
		if v, ok := describe(t, p); ok {
			m[p] = v
		}
	}
	return m
}

// snapshot describes every entry under base except the subtree skip.
func snapshot(t testing.TB, base, skip string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		v, _ := describe(t, p)
		m[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// describe summarises a path's type, mode, owner, times, content or link
// target and xattrs (not following a symlink).
func describe(t testing.TB, p string) (string, bool) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", false
	}
	s := fmt.Sprintf("mode=%o uid=%d gid=%d ino=%d mtime=%d.%d", st.Mode, st.Uid, st.Gid, st.Ino, st.Mtim.Sec, st.Mtim.Nsec)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		s += " sha=" + hex.EncodeToString(h[:8])
	case unix.S_IFLNK:
		l, _ := os.Readlink(p)
		s += " link=" + l
	}
	sz, _ := unix.Llistxattr(p, nil)
	if sz > 0 {
		b := make([]byte, sz)
		sz, _ = unix.Llistxattr(p, b)
		s += " xattrs=" + string(b[:sz])
	}
	return s, true
}

func apply(t *testing.T, dst string, data []byte, opts ApplyOptions) {
	t.Helper()
	if _, err := Apply(dst, bytes.NewReader(data), opts); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

func assertMissing(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		t.Fatalf("%s exists, want it gone", p)
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
}
