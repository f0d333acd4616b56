package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/testutil"
)

// summary is what a user checks of an image: its config and the diff_ids
// its layers decompress to.
type summary struct {
	Names   []string
	Config  digest.Digest
	DiffIDs []digest.Digest
}

// diffIDCache remembers what layers decompress to (a digest names the
// same bytes in every store).
var diffIDCache = struct {
	sync.Mutex
	m map[digest.Digest]digest.Digest
}{m: map[digest.Digest]digest.Digest{}}

// summarize resolves a loaded image and checks that each layer really
// decompresses to its diff_id.
func summarize(t *testing.T, cs *memStore, l Loaded) summary {
	t.Helper()
	img, err := resolveImage(context.Background(), cs, l.Manifest)
	if err != nil {
		t.Fatalf("loaded image %v does not resolve: %v", l.Names, err)
	}
	for i, layer := range img.manifest.Layers {
		c, ok := layerCompression(layer.MediaType)
		if !ok {
			t.Fatalf("layer %d: media type %q", i, layer.MediaType)
		}
		diffIDCache.Lock()
		got, ok := diffIDCache.m[layer.Digest]
		diffIDCache.Unlock()
		if !ok {
			var err error
			if got, _, err = diffID(context.Background(), cs, layer, c); err != nil {
				t.Fatal(err)
			}
			diffIDCache.Lock()
			diffIDCache.m[layer.Digest] = got
			diffIDCache.Unlock()
		}
		if want := img.config.RootFS.DiffIDs[i]; got != want {
			t.Fatalf("image %v layer %d: decompresses to %s, diff_id %s", l.Names, i, got, want)
		}
	}
	return summary{Names: l.Names, Config: img.manifest.Config.Digest, DiffIDs: img.config.RootFS.DiffIDs}
}

func loadFile(t *testing.T, cs *memStore, name string) []Loaded {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	loaded, err := Load(context.Background(), f, cs, nil)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loaded
}

func readAll(t *testing.T, name string) []byte {
	t.Helper()
	p, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func gunzip(t *testing.T, p []byte) []byte {
	t.Helper()
	z, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func zstdCompress(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	z, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	z.Write(p)
	z.Close()
	return buf.Bytes()
}

// recorder is a progress.Reporter that remembers the last status per id.
type recorder struct {
	mu   sync.Mutex
	last map[string]string
}

func (r *recorder) Update(id, status string, cur, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string]string{}
	}
	r.last[id] = status
}

func TestLoadDockerArchive(t *testing.T) {
	imgs := testutil.SharedImages(t)
	for _, c := range []struct {
		file, name, config string
		layers             int
	}{
		{"busybox.docker.tar.gz", "docker.io/library/busybox:1.35", "6630066cf9cdb716b0e1306a9e38de9df834f41fb670d3edd49481ff401bfc5b", 1},
		{"layers.docker.tar.gz", "docker.io/library/layers:1", "ad767dc321bdafe467448e41d624bc6cafad40e0ba5909e53b51feb0424ac18a", 4},
	} {
		t.Run(c.file, func(t *testing.T) {
			gz := readAll(t, filepath.Join(imgs, c.file))
			cs := newMemStore()
			rec := &recorder{}
			loaded, err := Load(context.Background(), bytes.NewReader(gz), cs, rec)
			if err != nil {
				t.Fatal(err)
			}
			if len(loaded) != 1 || !slices.Equal(loaded[0].Names, []string{c.name}) {
				t.Fatalf("loaded %+v, want one image named %s", loaded, c.name)
			}
			if mt := loaded[0].Manifest.MediaType; mt != mediaTypeDockerManifest {
				t.Fatalf("manifest media type %q", mt)
			}
			s := summarize(t, cs, loaded[0])
			if s.Config.Encoded() != c.config || len(s.DiffIDs) != c.layers {
				t.Fatalf("config %s with %d layers, want %s with %d", s.Config, len(s.DiffIDs), c.config, c.layers)
			}
			img, _ := resolveImage(context.Background(), cs, loaded[0].Manifest)
			for i, l := range img.manifest.Layers {
				if l.MediaType != mediaTypeDockerLayer || l.Digest != s.DiffIDs[i] {
					t.Fatalf("layer %d: %s %s, want an uncompressed layer %s", i, l.MediaType, l.Digest, s.DiffIDs[i])
				}
			}

			files := tarFiles(t, filepath.Join(t.TempDir(), "x.tar"), gunzip(t, gz))
			var mj []manifestItem
			json.Unmarshal(files["manifest.json"], &mj)
			for _, lp := range mj[0].Layers {
				id := lp[:12]
				if rec.last[id] != "Loaded" {
					t.Errorf("progress for layer %s: %q, want Loaded", id, rec.last[id])
				}
			}

			// The same archive uncompressed and zstd-compressed loads the same.
			plain := gunzip(t, gz)
			for name, p := range map[string][]byte{"plain": plain, "zstd": zstdCompress(t, plain)} {
				cs2 := newMemStore()
				l2, err := Load(context.Background(), bytes.NewReader(p), cs2, nil)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if len(l2) != 1 || l2[0].Manifest.Digest != loaded[0].Manifest.Digest {
					t.Fatalf("%s: loaded %+v, want %+v", name, l2, loaded)
				}
			}

			// A store without Ingest works too (content.Ingest spools).
			if _, err := Load(context.Background(), bytes.NewReader(gz), noIngestStore{newMemStore()}, nil); err != nil {
				t.Fatalf("store without Ingest: %v", err)
			}
		})
	}
}

// ociArchive returns the shared OCI layout as a gzip-compressed tar.
func ociArchive(t *testing.T) []byte {
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	tarDir(t, z, filepath.Join(testutil.SharedImages(t), "oci"))
	z.Close()
	return buf.Bytes()
}

func sharedIndex(t *testing.T) ocispec.Index {
	idx, err := readIndexFile(filepath.Join(testutil.SharedImages(t), "oci", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestLoadOCIArchive(t *testing.T) {
	idx := sharedIndex(t)
	cs := newMemStore()
	loaded, err := Load(context.Background(), bytes.NewReader(ociArchive(t)), cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 4 {
		t.Fatalf("loaded %d images, want 4", len(loaded))
	}
	for i, d := range idx.Manifests {
		want, _ := normalizeName(d.Annotations[ocispec.AnnotationRefName])
		if !slices.Equal(loaded[i].Names, []string{want}) || loaded[i].Manifest.Digest != d.Digest {
			t.Errorf("image %d: %v %s, want %s %s", i, loaded[i].Names, loaded[i].Manifest.Digest, want, d.Digest)
		}
		s := summarize(t, cs, loaded[i])
		if len(s.DiffIDs) == 0 {
			t.Errorf("%s: no layers", want)
		}
	}
}

func TestReadLayout(t *testing.T) {
	dir := filepath.Join(testutil.SharedImages(t), "oci")
	idx := sharedIndex(t)
	cs := newMemStore()
	for _, d := range idx.Manifests {
		ref := d.Annotations[ocispec.AnnotationRefName]
		for _, asked := range []string{ref, "docker.io/library/" + ref} {
			l, err := ReadLayout(context.Background(), dir, asked, cs)
			if err != nil {
				t.Fatalf("ReadLayout %s: %v", asked, err)
			}
			want, _ := normalizeName(ref)
			if l.Manifest.Digest != d.Digest || !slices.Equal(l.Names, []string{want}) {
				t.Fatalf("ReadLayout %s = %+v, want %s named %s", asked, l, d.Digest, want)
			}
			summarize(t, cs, l)
		}
	}
	_, err := ReadLayout(context.Background(), dir, "nope:1", newMemStore())
	if err == nil || !strings.Contains(err.Error(), `no image "nope:1"; it has: busybox:1.35, debian:bookworm-minbase, layers:1, web:1`) {
		t.Fatalf("missing ref: %v", err)
	}
	_, err = ReadLayout(context.Background(), dir, "", newMemStore())
	if err == nil || !strings.Contains(err.Error(), "holds 4 images") {
		t.Fatalf("empty ref: %v", err)
	}
	if _, err = ReadLayout(context.Background(), t.TempDir(), "x", newMemStore()); err == nil || !strings.Contains(err.Error(), "oci-layout") {
		t.Fatalf("not a layout: %v", err)
	}
}

func TestReadLayoutCorrupt(t *testing.T) {
	src := newMemStore()
	l, err := ReadLayout(context.Background(), filepath.Join(testutil.SharedImages(t), "oci"), "busybox:1.35", src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteLayout(context.Background(), dir, src, []SaveItem{{Names: l.Names, Manifest: l.Manifest}}); err != nil {
		t.Fatal(err)
	}
	img, _ := resolveImage(context.Background(), src, l.Manifest)
	layer := filepath.Join(dir, "blobs", "sha256", img.manifest.Layers[0].Digest.Encoded())
	p := readAll(t, layer)
	p[len(p)/2] ^= 0x40
	if err := os.WriteFile(layer, p, 0o644); err != nil {
		t.Fatal(err)
	}
	cs := newMemStore()
	_, err = ReadLayout(context.Background(), dir, "busybox:1.35", cs)
	if err == nil || !strings.Contains(err.Error(), img.manifest.Layers[0].Digest.String()) {
		t.Fatalf("corrupted layer: %v", err)
	}
	if _, err := cs.Info(context.Background(), img.manifest.Layers[0].Digest); err == nil {
		t.Fatal("the corrupted layer is in the store")
	}
	if err := os.Remove(layer); err != nil {
		t.Fatal(err)
	}
	_, err = ReadLayout(context.Background(), dir, "busybox:1.35", newMemStore())
	if err == nil || !strings.Contains(err.Error(), "missing from the layout") {
		t.Fatalf("missing layer: %v", err)
	}
}

// saveItems reads all four images of the shared layout.
func sharedItems(t *testing.T, cs *memStore) []SaveItem {
	var items []SaveItem
	for _, d := range sharedIndex(t).Manifests {
		l, err := ReadLayout(context.Background(), filepath.Join(testutil.SharedImages(t), "oci"), d.Annotations[ocispec.AnnotationRefName], cs)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, SaveItem(l))
	}
	return items
}

func saveToFile(t *testing.T, cs *memStore, items []SaveItem, f Format) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "image.tar")
	out, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := Save(context.Background(), out, cs, items, f); err != nil {
		t.Fatalf("save %s: %v", f, err)
	}
	return name
}

// tarFiles lists an archive's regular files and reads the small ones.
func tarFiles(t *testing.T, name string, data ...[]byte) map[string][]byte {
	var f io.Reader
	if data != nil {
		f = bytes.NewReader(data[0])
	} else {
		file, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		f = file
	}
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if _, dup := files[hdr.Name]; dup {
			t.Errorf("%s twice in the archive", hdr.Name)
		}
		var p []byte
		if hdr.Size < 1<<16 {
			p, _ = io.ReadAll(tr)
		}
		files[hdr.Name] = p
	}
}

func TestRoundTrip(t *testing.T) {
	cs := newMemStore()
	items := sharedItems(t, cs)
	var want []summary
	for _, it := range items {
		want = append(want, summarize(t, cs, Loaded(it)))
	}
	for _, f := range []Format{FormatOCI, FormatDocker} {
		t.Run(f.String(), func(t *testing.T) {
			name := saveToFile(t, cs, items, f)
			cs2 := newMemStore()
			got := loadFile(t, cs2, name)
			if len(got) != len(items) {
				t.Fatalf("loaded %d images, want %d", len(got), len(items))
			}
			for i := range got {
				s := summarize(t, cs2, got[i])
				if !slices.Equal(s.Names, want[i].Names) || s.Config != want[i].Config || !slices.Equal(s.DiffIDs, want[i].DiffIDs) {
					t.Errorf("image %d: %+v, want %+v", i, s, want[i])
				}
				img, _ := resolveImage(context.Background(), cs2, got[i].Manifest)
				switch f {
				case FormatOCI:
					if got[i].Manifest.Digest != items[i].Manifest.Digest {
						t.Errorf("image %d: manifest %s, want it kept: %s", i, got[i].Manifest.Digest, items[i].Manifest.Digest)
					}
				case FormatDocker:
					for j, l := range img.manifest.Layers {
						if l.MediaType != ocispec.MediaTypeImageLayer || l.Digest != s.DiffIDs[j] {
							t.Errorf("image %d layer %d: %s %s, want an uncompressed tar named by its diff_id", i, j, l.MediaType, l.Digest)
						}
					}
				}
			}

			// What Docker reads: manifest.json naming config and layers by path.
			files := tarFiles(t, name)
			for _, n := range []string{"oci-layout", "index.json", "manifest.json"} {
				if _, ok := files[n]; !ok {
					t.Fatalf("%s missing from the archive", n)
				}
			}
			var mj []manifestItem
			if err := json.Unmarshal(files["manifest.json"], &mj); err != nil {
				t.Fatal(err)
			}
			if len(mj) != 4 {
				t.Fatalf("manifest.json: %d images", len(mj))
			}
			for i, it := range mj {
				fam := []string{strings.TrimPrefix(want[i].Names[0], "docker.io/library/")}
				if !slices.Equal(it.RepoTags, fam) || it.Config != blobPath(want[i].Config) || len(it.Layers) != len(want[i].DiffIDs) {
					t.Errorf("manifest.json item %d: %+v", i, it)
				}
				for j, lp := range it.Layers {
					if _, ok := files[lp]; !ok {
						t.Errorf("manifest.json item %d: layer %s not in the archive", i, lp)
					}
					if f == FormatDocker && lp != blobPath(want[i].DiffIDs[j]) {
						t.Errorf("manifest.json item %d: layer %s, want %s", i, lp, blobPath(want[i].DiffIDs[j]))
					}
				}
			}
			if _, ok := files["repositories"]; ok != (f == FormatDocker) {
				t.Errorf("repositories present: %v", ok)
			}

			// Saving what was loaded gives the same images again.
			name2 := saveToFile(t, cs2, asItems(got), f)
			cs3 := newMemStore()
			again := loadFile(t, cs3, name2)
			for i := range again {
				if again[i].Manifest.Digest != got[i].Manifest.Digest || !slices.Equal(again[i].Names, got[i].Names) {
					t.Errorf("second round trip, image %d: %+v, want %+v", i, again[i], got[i])
				}
			}
		})
	}
}

func TestRoundTripDockerArchive(t *testing.T) {
	cs := newMemStore()
	loaded := loadFile(t, cs, filepath.Join(testutil.SharedImages(t), "layers.docker.tar.gz"))
	want := summarize(t, cs, loaded[0])
	for _, f := range []Format{FormatDocker, FormatOCI} {
		name := saveToFile(t, cs, []SaveItem{{Names: []string{"layers:1", "example.com/x/layers:2"}, Manifest: loaded[0].Manifest}}, f)
		cs2 := newMemStore()
		got := loadFile(t, cs2, name)
		if len(got) != 1 || got[0].Manifest.Digest != loaded[0].Manifest.Digest {
			t.Fatalf("%s: loaded %+v, want the manifest kept (%s)", f, got, loaded[0].Manifest.Digest)
		}
		if s := summarize(t, cs2, got[0]); s.Config != want.Config || !slices.Equal(s.Names, []string{"docker.io/library/layers:1", "example.com/x/layers:2"}) {
			t.Fatalf("%s: %+v", f, s)
		}
	}
}

func TestWriteLayout(t *testing.T) {
	cs := newMemStore()
	items := sharedItems(t, cs)
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteLayout(context.Background(), dir, cs, items[:2]); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(context.Background(), dir, cs, items[1:]); err != nil {
		t.Fatal(err)
	}
	// layers:1 again under busybox's name replaces busybox's entry.
	if err := WriteLayout(context.Background(), dir, cs, []SaveItem{{Names: []string{"busybox:1.35"}, Manifest: items[1].Manifest}}); err != nil {
		t.Fatal(err)
	}
	idx, err := readIndexFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 4 {
		t.Fatalf("index.json has %d entries, want 4: %+v", len(idx.Manifests), idx.Manifests)
	}
	for i, it := range items {
		ref := strings.TrimPrefix(it.Names[0], "docker.io/library/")
		l, err := ReadLayout(context.Background(), dir, ref, newMemStore())
		if err != nil {
			t.Fatal(err)
		}
		want := it.Manifest.Digest
		if i == 0 {
			want = items[1].Manifest.Digest
		}
		if l.Manifest.Digest != want {
			t.Errorf("%s: %s, want %s", ref, l.Manifest.Digest, want)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// goodLoad loads p and returns the manifests, for comparing with a damaged
// copy's.
func manifests(l []Loaded) []string {
	var out []string
	for _, x := range l {
		out = append(out, x.Manifest.Digest.String()+" "+strings.Join(x.Names, ","))
	}
	return out
}

// entryOffset returns where an entry's data starts in a plain tar, and the
// offset right after the last entry's data.
func entryOffset(t *testing.T, p []byte, name string) (start, end int64) {
	cr := &countReader{r: bytes.NewReader(p)}
	tr := tar.NewReader(cr)
	start = -1
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return start, end
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == name {
			start = cr.n
		}
		end = cr.n + hdr.Size
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestLoadDamaged(t *testing.T) {
	gz := readAll(t, filepath.Join(testutil.SharedImages(t), "busybox.docker.tar.gz"))
	plain := gunzip(t, gz)
	good, err := Load(context.Background(), bytes.NewReader(plain), newMemStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	goodManifest := good[0].Manifest.Digest
	rnd := rand.New(rand.NewSource(1))

	expectError := func(what string, p []byte, wantInErr string) {
		t.Helper()
		cs := newMemStore()
		l, err := Load(context.Background(), bytes.NewReader(p), cs, nil)
		if err == nil {
			t.Errorf("%s: loaded %v, want an error", what, manifests(l))
			return
		}
		if !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("%s: error %q does not say %q", what, err, wantInErr)
		}
		if _, err := cs.Info(context.Background(), goodManifest); err == nil {
			t.Errorf("%s: the manifest was stored despite the error", what)
		}
	}

	_, dataEnd := entryOffset(t, plain, "repositories")
	for i := 0; i < 40; i++ {
		cut := rnd.Int63n(dataEnd)
		expectError("plain tar cut at "+itoa(cut), plain[:cut], "")
	}
	for i := 0; i < 40; i++ {
		cut := rnd.Int63n(int64(len(gz)))
		expectError("gzip cut at "+itoa(cut), gz[:cut], "")
	}
	// Flipped bytes anywhere: an error, or (for bytes nothing depends on:
	// tar padding, mtimes, the old layout's v1 json) the very same images.
	for _, src := range [][]byte{plain, gz} {
		for i := 0; i < 60; i++ {
			p := bytes.Clone(src)
			off := rnd.Intn(len(p))
			p[off] ^= byte(1 << rnd.Intn(8))
			l, err := Load(context.Background(), bytes.NewReader(p), newMemStore(), nil)
			if err == nil && !slices.Equal(manifests(l), manifests(good)) {
				t.Errorf("byte %d flipped: loaded %v, want %v or an error", off, manifests(l), manifests(good))
			}
		}
	}

	// Damage where it matters, with the error naming the entry.
	layer := "71f1bf9e22a9fcc3e9df1c635de1e557a0fa70b7e96b831ef9587be946efade5/layer.tar"
	start, _ := entryOffset(t, plain, layer)
	p := bytes.Clone(plain)
	p[start+100000] ^= 1
	expectError("layer byte flipped", p, "diff_id")
	config := "6630066cf9cdb716b0e1306a9e38de9df834f41fb670d3edd49481ff401bfc5b.json"
	start, _ = entryOffset(t, plain, config)
	p = bytes.Clone(plain)
	p[start+int64(bytes.Index(plain[start:], []byte(`"sh"`)))+1] = 'x'
	expectError("config changed", p, "content digest")
	start, _ = entryOffset(t, plain, "manifest.json")
	p = bytes.Clone(plain)
	i := start + int64(bytes.Index(plain[start:], []byte("layer.tar")))
	p[i] = 'X'
	expectError("manifest.json names a missing layer", p, "Xayer.tar\" is not in the archive")

	// Not archives at all.
	expectError("empty", nil, "empty")
	expectError("text", []byte("hello, world\n"), "not a tar archive")
	junk := make([]byte, 4096)
	rnd.Read(junk)
	expectError("random bytes", junk, "")
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(junk)
	zw.Close()
	expectError("gzip of random bytes", z.Bytes(), "not a tar archive (gzip)")
	expectError("xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2}, "xz compression is not supported")
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Size: 2, Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	expectError("tar of something else", tb.Bytes(), "neither manifest.json")
}

func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gz := readAll(t, filepath.Join(testutil.SharedImages(t), "busybox.docker.tar.gz"))
	if _, err := Load(ctx, bytes.NewReader(gz), newMemStore(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled load: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func asItems(l []Loaded) []SaveItem {
	var out []SaveItem
	for _, x := range l {
		out = append(out, SaveItem(x))
	}
	return out
}

// TestLoadOldLayoutBigLayer: a layer.tar of the old layout (digest unknown
// until read) larger than what is hashed in memory goes through the
// store's Ingest, or content.Ingest's spool for a store without one.
func TestLoadOldLayoutBigLayer(t *testing.T) {
	src := newMemStore()
	data := make([]byte, 6<<20)
	rand.New(rand.NewSource(3)).Read(data)
	it := imageWithFile(t, src, data)
	old := oldLayout(t, src, it)
	cs := newMemStore()
	l, err := Load(context.Background(), bytes.NewReader(old), cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || !slices.Equal(l[0].Names, []string{"docker.io/library/tiny:1", "docker.io/library/tiny:2"}) {
		t.Fatalf("loaded %+v", l)
	}
	s := summarize(t, cs, l[0])
	if _, err := cs.Info(context.Background(), s.DiffIDs[0]); err != nil {
		t.Fatalf("the uncompressed layer is not stored under its diff_id: %v", err)
	}
	noIngest := newMemStore()
	if _, err := Load(context.Background(), bytes.NewReader(old), noIngestStore{noIngest}, nil); err != nil {
		t.Fatalf("store without Ingest: %v", err)
	}
	if _, err := noIngest.Info(context.Background(), s.DiffIDs[0]); err != nil {
		t.Fatalf("store without Ingest: layer not stored: %v", err)
	}
}
