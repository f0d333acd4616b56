package snapshottest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
)

// harness is one subtest's snapshotter on its own root.
type harness struct {
	t    *testing.T
	base string // holds root and the mount points
	root string
	s    snapshot.Snapshotter
	new  func(t *testing.T, root string) snapshot.Snapshotter
	nmnt int
}

func newHarness(t *testing.T, newSnapshotter func(t *testing.T, root string) snapshot.Snapshotter) *harness {
	t.Helper()
	base, err := os.MkdirTemp("", "berth-snapshottest-")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, base: base, root: filepath.Join(base, "root"), new: newSnapshotter}
	// Registered first, so it runs last: after every mount is gone.
	t.Cleanup(h.teardown)
	h.s = newSnapshotter(t, h.root)
	return h
}

// teardown removes every snapshot, then checks that nothing is mounted
// under the test's directory and that the root holds no directory with
// anything in it (only the store's files), then deletes it all.
func (h *harness) teardown() {
	t := h.t
	defer func() {
		if ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(h.base)); len(ms) > 0 {
			for i := len(ms) - 1; i >= 0; i-- {
				unix.Unmount(ms[i].Mountpoint, unix.MNT_DETACH)
			}
		}
		os.RemoveAll(h.base)
	}()
	if h.s == nil {
		return
	}
	if err := removeAll(h.s); err != nil {
		t.Errorf("teardown: %v", err)
	}
	if err := h.s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(h.base))
	if err != nil {
		t.Errorf("read mounts: %v", err)
	}
	for _, m := range ms {
		t.Errorf("left mounted after the test: %s (%s)", m.Mountpoint, m.FSType)
	}
	filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == h.root || !d.IsDir() {
			return nil
		}
		if ents, _ := os.ReadDir(p); len(ents) > 0 {
			names := make([]string, 0, len(ents))
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("left in the snapshotter's root after every snapshot was removed: %s holds %v", p, names)
			return filepath.SkipDir
		}
		return nil
	})
}

// removeAll removes every snapshot, children first.
func removeAll(s snapshot.Snapshotter) error {
	for {
		var infos []snapshot.Info
		if err := s.Walk(func(i snapshot.Info) error { infos = append(infos, i); return nil }); err != nil {
			return err
		}
		if len(infos) == 0 {
			return nil
		}
		progress := false
		for _, i := range infos {
			err := s.Remove(i.Key)
			if err == nil {
				progress = true
			} else if !errors.Is(err, snapshot.ErrInUse) && !errors.Is(err, snapshot.ErrNotFound) {
				return err
			}
		}
		if !progress {
			return fmt.Errorf("no snapshot of %d could be removed", len(infos))
		}
	}
}

func (h *harness) prepare(key, parent string) []snapshot.Mount {
	h.t.Helper()
	m, err := h.s.Prepare(key, parent, nil)
	if err != nil {
		h.t.Fatalf("prepare %q on %q: %v", key, parent, err)
	}
	return m
}

func (h *harness) view(key, parent string) []snapshot.Mount {
	h.t.Helper()
	m, err := h.s.View(key, parent, nil)
	if err != nil {
		h.t.Fatalf("view %q of %q: %v", key, parent, err)
	}
	return m
}

// apply applies the layer tar into key's ApplyDir, in the whiteout form
// the driver asks for.
func (h *harness) apply(key string, layer io.Reader) {
	h.t.Helper()
	dir, overlay, err := h.s.ApplyDir(key)
	if err != nil {
		h.t.Fatalf("apply dir of %q: %v", key, err)
	}
	opts := archive.ApplyOptions{Whiteouts: archive.WhiteoutDelete}
	if overlay {
		opts.Whiteouts = archive.WhiteoutOverlay
	}
	if _, err := archive.Apply(dir, layer, opts); err != nil {
		h.t.Fatalf("apply layer into %q: %v", key, err)
	}
}

func (h *harness) commit(name, key string) {
	h.t.Helper()
	if err := h.s.Commit(name, key, nil); err != nil {
		h.t.Fatalf("commit %q as %q: %v", key, name, err)
	}
}

// layer makes the committed snapshot name on parent from a layer tar.
func (h *harness) layer(name, parent string, layer []byte) {
	h.t.Helper()
	h.prepare(name+"-unpack", parent)
	h.apply(name+"-unpack", bytes.NewReader(layer))
	h.commit(name, name+"-unpack")
}

// mount mounts mounts on a new directory and unmounts it at the end of
// the test.
func (h *harness) mount(mounts []snapshot.Mount) string {
	h.t.Helper()
	h.nmnt++
	target := filepath.Join(h.base, fmt.Sprintf("mnt%d", h.nmnt))
	if err := os.Mkdir(target, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := snapshot.MountAll(mounts, target); err != nil {
		os.Remove(target)
		h.t.Fatalf("mount %+v: %v", mounts, err)
	}
	h.t.Cleanup(func() { h.unmount(target) })
	return target
}

func (h *harness) unmount(target string) {
	h.t.Helper()
	if err := snapshot.UnmountAll(target); err != nil {
		h.t.Errorf("unmount %s: %v", target, err)
	}
	os.Remove(target)
}

// ent is one entry of a test layer tar.
type ent struct {
	name     string
	typ      byte
	body     string // file content
	link     string // link target
	mode     int64
	uid, gid int
	major    int64
	minor    int64
	xattrs   map[string]string
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body, mode: 0o644} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func whiteout(name string) ent {
	d, b := filepath.Split(name)
	return ent{name: d + ".wh." + b, typ: tar.TypeReg, mode: 0o644}
}
func opaque(dir string) ent {
	return ent{name: dir + "/.wh..wh..opq", typ: tar.TypeReg, mode: 0o644}
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, Devmajor: e.major, Devminor: e.minor, ModTime: epoch, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tree describes every entry under root, for comparing two trees: type,
// mode, owner, size and content digest, link target, device number and
// xattrs (overlayfs' own left out); mtimes of regular files.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("type=%o mode=%o owner=%d:%d", st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += fmt.Sprintf(" size=%d sha=%s mtime=%d", len(b), hex.EncodeToString(sum[:8]), st.Mtim.Sec)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if rel != "." {
			desc += xattrDesc(p)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("read tree %s: %v", root, err)
	}
	return out
}

func xattrDesc(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var parts []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		v := make([]byte, 4096)
		vn, _ := unix.Lgetxattr(p, name, v)
		if vn < 0 {
			vn = 0
		}
		parts = append(parts, name+"="+string(v[:vn]))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return ""
	}
	return " xattrs=" + strings.Join(parts, ",")
}

func compareTrees(t *testing.T, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	bad := 0
	for _, k := range keys {
		if want[k] != got[k] {
			bad++
			if bad <= 20 {
				t.Errorf("/%s: got %q, want %q", k, got[k], want[k])
			}
		}
	}
	if bad > 20 {
		t.Errorf("... %d differences in all", bad)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("read %s: %v", p, err)
	}
	return string(b)
}

func assertMissing(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: want it missing, got %v", p, err)
	}
}

func dirNames(t *testing.T, p string) []string {
	t.Helper()
	ents, err := os.ReadDir(p)
	if err != nil {
		t.Errorf("read %s: %v", p, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read diff tar: %v", err)
		}
		out = append(out, strings.TrimSuffix(hdr.Name, "/"))
	}
}
