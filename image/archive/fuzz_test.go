package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tinyImage puts a one-layer image (a gzip-compressed layer holding one
// file) into cs.
func tinyImage(t testing.TB, cs *memStore) SaveItem { return imageWithFile(t, cs, []byte("hi\n")) }

// imageWithFile puts a one-layer image into cs whose layer holds one file.
func imageWithFile(t testing.TB, cs *memStore, data []byte) SaveItem {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "hello", Size: int64(len(data)), Mode: 0o644, Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	var gz bytes.Buffer
	z := gzip.NewWriter(&gz)
	z.Write(layer.Bytes())
	z.Close()
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer.Bytes())}}}
	cfg.Config.Cmd = []string{"/hello"}
	put := func(mt string, v any) ocispec.Descriptor {
		p, ok := v.([]byte)
		if !ok {
			p, _ = json.Marshal(v)
		}
		d, err := putBytes(context.Background(), cs, mt, p)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: put(ocispec.MediaTypeImageConfig, cfg),
		Layers: []ocispec.Descriptor{put(ocispec.MediaTypeImageLayerGzip, gz.Bytes())}}
	m.SchemaVersion = 2
	return SaveItem{Names: []string{"tiny:1"}, Manifest: put(m.MediaType, m)}
}

// seedArchives are small valid archives of each kind Load reads.
func seedArchives(t testing.TB) map[string][]byte {
	cs := newMemStore()
	it := tinyImage(t, cs)
	out := map[string][]byte{}
	for _, f := range []Format{FormatDocker, FormatOCI} {
		var buf bytes.Buffer
		if err := Save(context.Background(), &buf, cs, []SaveItem{it}, f); err != nil {
			t.Fatal(err)
		}
		out[f.String()] = buf.Bytes()
	}
	old := oldLayout(t, cs, it)
	out["docker-old"] = old
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(old)
	zw.Close()
	out["docker-old.gz"] = gz.Bytes()
	return out
}

// oldLayout writes item as the old docker-archive layout, by hand:
// <id>/layer.tar, <config>.json, a symlinked duplicate layer directory,
// manifest.json last (item twice, as tiny:1 and tiny:2).
func oldLayout(t testing.TB, cs *memStore, it SaveItem) []byte {
	img, err := resolveImage(context.Background(), cs, it.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := readBlobBytes(cs, img.manifest.Config)
	gzLayer, _ := readBlobBytes(cs, img.manifest.Layers[0])
	z, _ := gzip.NewReader(bytes.NewReader(gzLayer))
	var layer bytes.Buffer
	layer.ReadFrom(z)
	var old bytes.Buffer
	tw := tar.NewWriter(&old)
	file := func(name string, p []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Size: int64(len(p)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(p)
	}
	id := "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999"
	tw.WriteHeader(&tar.Header{Name: id + "/", Mode: 0o755, Typeflag: tar.TypeDir})
	file(id+"/VERSION", []byte("1.0"))
	file(id+"/layer.tar", layer.Bytes())
	tw.WriteHeader(&tar.Header{Name: "dup/layer.tar", Linkname: "../" + id + "/layer.tar", Typeflag: tar.TypeSymlink})
	file(img.manifest.Config.Digest.Encoded()+".json", cfg)
	mj, _ := json.Marshal([]manifestItem{
		{Config: img.manifest.Config.Digest.Encoded() + ".json", RepoTags: []string{"tiny:1"}, Layers: []string{id + "/layer.tar"}},
		{Config: img.manifest.Config.Digest.Encoded() + ".json", RepoTags: []string{"tiny:2"}, Layers: []string{"dup/layer.tar"}},
	})
	file("manifest.json", mj)
	file("repositories", []byte(`{"tiny":{"1":"`+id+`"}}`))
	tw.Close()
	return old.Bytes()
}

func readBlobBytes(cs *memStore, d ocispec.Descriptor) ([]byte, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	p, ok := cs.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("no blob %s", d.Digest)
	}
	return p, nil
}

func TestSeedArchives(t *testing.T) {
	for name, p := range seedArchives(t) {
		cs := newMemStore()
		l, err := Load(context.Background(), bytes.NewReader(p), cs, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "docker-old" || name == "docker-old.gz" {
			if len(l) != 1 || len(l[0].Names) != 2 {
				t.Fatalf("%s: %+v, want one image with two names", name, l)
			}
		} else if len(l) != 1 || l[0].Names[0] != "docker.io/library/tiny:1" {
			t.Fatalf("%s: %+v", name, l)
		}
		summarize(t, cs, l[0])
	}
	// BERTH_WRITE_FUZZ_SEEDS=1 rewrites the seed corpus from these.
	if os.Getenv("BERTH_WRITE_FUZZ_SEEDS") == "1" {
		dir := filepath.Join("testdata", "fuzz", "FuzzLoad")
		os.MkdirAll(dir, 0o755)
		for name, p := range seedArchives(t) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", p)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzLoad: any input gives an error or images that resolve in the store;
// never a panic or a hang.
func FuzzLoad(f *testing.F) {
	for _, p := range seedArchives(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		cs := newMemStore()
		loaded, err := Load(context.Background(), bytes.NewReader(p), cs, nil)
		if err != nil {
			return
		}
		for _, l := range loaded {
			if _, err := resolveImage(context.Background(), cs, l.Manifest); err != nil {
				t.Fatalf("Load returned %v whose manifest does not resolve: %v", l.Names, err)
			}
		}
	})
}
