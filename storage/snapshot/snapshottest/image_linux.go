package snapshottest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// ImageLayers returns the compressed layer blobs (paths) of the image
// named ref (annotation org.opencontainers.image.ref.name) in an OCI
// layout, bottom layer first.
func ImageLayers(tb testing.TB, layout, ref string) []string {
	tb.Helper()
	type desc struct {
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	}
	blob := func(d string) string {
		algo, hex, ok := strings.Cut(d, ":")
		if !ok || strings.ContainsAny(hex, "/.") {
			tb.Fatalf("bad digest %q", d)
		}
		return filepath.Join(layout, "blobs", algo, hex)
	}
	read := func(p string, v any) {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
	}
	var idx struct{ Manifests []desc }
	read(filepath.Join(layout, "index.json"), &idx)
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != ref {
			continue
		}
		var man struct{ Layers []desc }
		read(blob(m.Digest), &man)
		var out []string
		for _, l := range man.Layers {
			out = append(out, blob(l.Digest))
		}
		return out
	}
	tb.Fatalf("no image %q in %s", ref, layout)
	return nil
}

// unpackImage applies the gzip layers of ref as a chain of committed
// snapshots and returns the top one's key.
func (h *harness) unpackImage(ref string) string {
	t := h.t
	parent := ""
	for i, p := range ImageLayers(t, filepath.Join(testutil.SharedImages(t), "oci"), ref) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		name := fmt.Sprintf("%s-layer%d", ref, i)
		h.prepare(name+"-unpack", parent)
		h.apply(name+"-unpack", zr)
		f.Close()
		h.commit(name, name+"-unpack")
		parent = name
	}
	return parent
}

// testLayersImage unpacks ../shared/images' layers:1 and checks what its
// README says the result must look like, running its programs in it.
func testLayersImage(t *testing.T, h *harness) {
	top := h.unpackImage("layers:1")
	root := h.mount(h.prepare("container", top))

	assertMissing(t, root+"/data/gone")
	if got := dirNames(t, root+"/data/opaque"); strings.Join(got, ",") != "c" {
		t.Errorf("/data/opaque holds %v, want only c", got)
	}
	for p, want := range map[string]string{"data/opaque/c": "new", "data/keep/a": "changed", "data/hard": "one"} {
		if got := strings.TrimSpace(readFile(t, root+"/"+p)); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	if l, err := os.Readlink(root + "/data/link"); err != nil || l != "/data/keep/a" {
		t.Errorf("/data/link -> %q (%v), want /data/keep/a", l, err)
	}
	var st, ast unix.Stat_t
	if err := unix.Lstat(root+"/data/hard", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("/data/hard: mode %o (%v), want a regular file", st.Mode, err)
	}
	if err := unix.Lstat(root+"/data/keep/a", &ast); err == nil && ast.Ino == st.Ino {
		t.Errorf("/data/hard is still a hard link of /data/keep/a")
	}
	if ents := dirNames(t, root+"/data/emptydir"); len(ents) != 0 {
		t.Errorf("/data/emptydir holds %v, want nothing", ents)
	}
	if err := unix.Lstat(root+"/bin/busybox", &st); err != nil || st.Mode&0o7777 != 0o4755 {
		t.Errorf("/bin/busybox: mode %o (%v), want 4755", st.Mode&0o7777, err)
	}
	if err := unix.Lstat(root+"/home/app/work", &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("/home/app/work: owner %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
	}
	// What the image's user sees: its command and its identity.
	run := func(args ...string) string {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = "/home/app"
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hi"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("%v in the image: %v: %s", args, err, out.String())
		}
		return strings.TrimSpace(out.String())
	}
	if got := run("/usr/local/bin/hello"); got != "hello from layers image: changed" {
		t.Errorf("hello printed %q", got)
	}
	if got := run("/usr/bin/id"); !strings.HasPrefix(got, "uid=1000(app) gid=1000(app)") {
		t.Errorf("id printed %q", got)
	}
}
