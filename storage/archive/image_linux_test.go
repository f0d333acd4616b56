package archive

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// imageLayers returns the uncompressed layer tars of the image named ref
// in an OCI image layout.
func imageLayers(t *testing.T, layout, ref string) [][]byte {
	t.Helper()
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	}
	blob := func(d string) []byte {
		algo, hex, ok := strings.Cut(d, ":")
		if !ok {
			t.Fatalf("bad digest %q", d)
		}
		b, err := os.ReadFile(filepath.Join(layout, "blobs", algo, hex))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var idx struct{ Manifests []desc }
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != ref {
			continue
		}
		var man struct{ Layers []desc }
		if err := json.Unmarshal(blob(m.Digest), &man); err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, l := range man.Layers {
			zr, err := gzip.NewReader(bytes.NewReader(blob(l.Digest)))
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			data, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			out = append(out, data)
		}
		return out
	}
	t.Fatalf("no image %q in %s", ref, layout)
	return nil
}

// checkLayersImage asserts what ../shared/images/README.md says the
// layers:1 image must look like.
func checkLayersImage(t *testing.T, root string) {
	t.Helper()
	assertMissing(t, filepath.Join(root, "data/gone"))
	ents, err := os.ReadDir(filepath.Join(root, "data/opaque"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "c" {
		t.Errorf("/data/opaque holds %v, want only c", ents)
	}
	for p, want := range map[string]string{"data/opaque/c": "new", "data/keep/a": "changed", "data/hard": "one"} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(root, p))); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "data/link")); err != nil || l != "/data/keep/a" {
		t.Errorf("/data/link -> %q (%v), want /data/keep/a", l, err)
	}
	if st := lstat(t, filepath.Join(root, "data/hard")); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("/data/hard: mode %o, want a regular file", st.Mode)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "data/emptydir")); err != nil || len(ents) != 0 {
		t.Errorf("/data/emptydir: %v %v, want an empty directory", ents, err)
	}
	if st := lstat(t, filepath.Join(root, "bin/busybox")); st.Mode&0o7777 != 0o4755 {
		t.Errorf("/bin/busybox mode %o, want 4755", st.Mode&0o7777)
	}
	if st := lstat(t, filepath.Join(root, "home/app/work")); st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("/home/app/work owned by %d:%d, want 1000:1000", st.Uid, st.Gid)
	}
	if !strings.Contains(readFile(t, filepath.Join(root, "usr/local/bin/hello")), "hello from layers image") {
		t.Errorf("/usr/local/bin/hello is not the image's script")
	}
}

func TestApplyLayersImageVFS(t *testing.T) {
	requireRoot(t)
	layers := imageLayers(t, filepath.Join(testutil.SharedImages(t), "oci"), "layers:1")
	if len(layers) != 4 {
		t.Fatalf("layers:1 has %d layers, want 4", len(layers))
	}
	s := newSandbox(t)
	for i, l := range layers {
		n, err := Apply(s.dst, bytes.NewReader(l), ApplyOptions{})
		if err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
		if n <= 0 && i != 1 {
			t.Errorf("layer %d: %d bytes applied", i+1, n)
		}
	}
	s.check(t)
	checkLayersImage(t, s.dst)
	// In one merged tree the link between /data/hard and /data/keep/a is gone.
	if st := lstat(t, filepath.Join(s.dst, "data/hard")); st.Nlink != 1 {
		t.Errorf("/data/hard has %d links, want 1", st.Nlink)
	}
}

// TestLayersImageOverlay unpacks each layer into its own directory in
// overlay mode, mounts them with overlayfs and checks the merged view;
// then turns layer 3 back into a tar (WriteOverlayDiff) and checks that
// applying it in vfs mode gives the same image.
func TestLayersImageOverlay(t *testing.T) {
	requireRoot(t)
	layers := imageLayers(t, filepath.Join(testutil.SharedImages(t), "oci"), "layers:1")
	base, err := os.MkdirTemp("", "berth-archive-overlay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	var dirs []string
	for i, l := range layers {
		d := filepath.Join(base, fmt.Sprintf("l%d", i+1))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(d, bytes.NewReader(l), ApplyOptions{Whiteouts: WhiteoutOverlay}); err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
		dirs = append([]string{d}, dirs...) // overlayfs wants the top layer first
	}
	merged := filepath.Join(base, "merged")
	if err := os.Mkdir(merged, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("berth-overlay", merged, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(dirs, ":")); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	checkLayersImage(t, merged)
	if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
		t.Fatalf("unmount %s: %v", merged, err)
	}

	var l3 bytes.Buffer
	if err := WriteOverlayDiff(&l3, filepath.Join(base, "l3"), DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"data/.wh.gone", "data/opaque/.wh..wh..opq", "data/opaque/c"} {
		if !bytes.Contains(l3.Bytes(), []byte(want)) {
			t.Errorf("diff of layer 3 lacks %s", want)
		}
	}
	vfs := filepath.Join(base, "vfs")
	if err := os.Mkdir(vfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, l := range [][]byte{layers[0], layers[1], l3.Bytes(), layers[3]} {
		if _, err := Apply(vfs, bytes.NewReader(l), ApplyOptions{}); err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
	}
	checkLayersImage(t, vfs)
}
