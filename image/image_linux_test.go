package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/storage/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var ctx = context.Background()

func TestRegisterSharedImages(t *testing.T) {
	s := newService(t, "overlay", Options{})
	imgs := registerShared(t, s)
	if len(imgs) != 4 {
		t.Fatalf("registered %d images, want 4", len(imgs))
	}
	m := layoutManifests(t, sharedLayout(t))
	for name, img := range imgs {
		b, _ := os.ReadFile(filepath.Join(sharedLayout(t), "blobs", "sha256", m[name].Digest.Encoded()))
		var man ocispec.Manifest
		json.Unmarshal(b, &man)
		if img.ID != man.Config.Digest.String() || img.Manifest.Digest != m[name].Digest {
			t.Errorf("%s: ID %s manifest %s, want %s %s", name, img.ID, img.Manifest.Digest, man.Config.Digest, m[name].Digest)
		}
		if len(img.RepoTags) != 1 || img.RepoTags[0] != name {
			t.Errorf("%s: RepoTags %v", name, img.RepoTags)
		}
		if len(img.Layers) != len(img.DiffIDs) || len(img.ChainIDs) != len(img.Layers) {
			t.Errorf("%s: %d layers %d diff IDs", name, len(img.Layers), len(img.DiffIDs))
		}
	}
	l := imgs["layers:1"]
	if l.Config.Config.User != "app" || l.Config.Config.WorkingDir != "/home/app" || !contains(l.Config.Config.Env, "GREETING=hi") || l.Config.Config.Cmd[0] != "hello" {
		t.Errorf("layers:1 config %+v", l.Config.Config)
	}
	if _, ok := imgs["web:1"].Config.Config.ExposedPorts["80/tcp"]; !ok {
		t.Errorf("web:1 exposes %v", imgs["web:1"].Config.Config.ExposedPorts)
	}
	if l.Platform.OS != "linux" || l.Created.IsZero() || l.Size <= 0 {
		t.Errorf("layers:1 platform %v created %v size %d", l.Platform, l.Created, l.Size)
	}
	hex := strings.TrimPrefix(l.ID, "sha256:")
	for _, ref := range []string{"layers:1", "docker.io/library/layers:1", "index.docker.io/library/layers:1", l.ID, hex, hex[:12], "sha256:" + hex[:8], hex[:5]} {
		got, err := s.Get(ctx, ref)
		if err != nil {
			t.Errorf("Get(%q): %v", ref, err)
		} else if got.ID != l.ID {
			t.Errorf("Get(%q) = %s, want %s", ref, got.ID, l.ID)
		}
	}
	for ref, want := range map[string]string{
		"busybox":                          "no such image: busybox",
		"layers:2":                         "no such image: layers:2",
		"sha256:" + hex[:5] + "0000000000": "no such image",
		"Bad:Ref":                          "invalid",
		strings.Repeat("0", 64):            "no such image",
	} {
		_, err := s.Get(ctx, ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(%q) = %v, want an error with %q", ref, err, want)
		}
	}
	if _, err := s.Get(ctx, "busybox"); !errors.Is(err, ErrNotFound) {
		t.Errorf("not found is not ErrNotFound: %v", err)
	}

	// Registering again by digest adds a repo digest, keeps the tag.
	again, err := s.Register(ctx, m["busybox:1.35"], []string{"busybox@" + m["busybox:1.35"].Digest.String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.RepoTags) != 1 || len(again.RepoDigests) != 1 || again.RepoDigests[0] != "busybox@"+m["busybox:1.35"].Digest.String() {
		t.Errorf("after re-register: tags %v digests %v", again.RepoTags, again.RepoDigests)
	}
	if got, err := s.Get(ctx, "busybox@"+m["busybox:1.35"].Digest.String()); err != nil || got.ID != again.ID {
		t.Errorf("Get by repo digest: %v", err)
	}
}

func TestUnpackLayersImage(t *testing.T) {
	for _, driver := range []string{"overlay", "vfs"} {
		t.Run(driver, func(t *testing.T) {
			s := newService(t, driver, Options{})
			imgs := registerShared(t, s, "busybox:1.35", "layers:1")
			// busybox first: layers:1 reuses its layer.
			top, err := s.Unpack(ctx, imgs["busybox:1.35"])
			if err != nil {
				t.Fatal(err)
			}
			if top != imgs["busybox:1.35"].TopChainID() {
				t.Errorf("top %s, want %s", top, imgs["busybox:1.35"].TopChainID())
			}
			var events []string
			rep := reporterFunc(func(id, status string, cur, total int64) { events = append(events, id+" "+status) })
			if _, err := s.Unpack(ctx, imgs["layers:1"], WithProgress(rep)); err != nil {
				t.Fatal(err)
			}
			if joined := strings.Join(events, ","); strings.Contains(joined, "b39a9a997269") || !strings.Contains(joined, "fbcee1b12397 Extracted") {
				t.Errorf("progress %v: want the 3 new layers and not busybox's", events)
			}
			checkLayersImage(t, mountImage(t, s, imgs["layers:1"]))
			if got := committedLayers(t, s); len(got) != 4 {
				t.Errorf("%d committed layers, want 4: %v", len(got), got)
			}
			// Again: nothing to do.
			events = nil
			if _, err := s.Unpack(ctx, imgs["layers:1"], WithProgress(rep)); err != nil || len(events) != 0 {
				t.Errorf("second unpack: %v, %v", err, events)
			}
			img, _ := s.Get(ctx, "layers:1")
			var compressed int64
			for _, l := range img.Layers {
				compressed += l.Size
			}
			if img.Size <= compressed {
				t.Errorf("unpacked size %d not above the compressed %d", img.Size, compressed)
			}
		})
	}
}

type reporterFunc func(id, status string, cur, total int64)

func (f reporterFunc) Update(id, status string, cur, total int64) { f(id, status, cur, total) }

func committedLayers(t testing.TB, s *Service) []string {
	t.Helper()
	var out []string
	s.Snapshotter().Walk(func(i snapshot.Info) error {
		if i.Kind == snapshot.KindCommitted {
			out = append(out, i.Key)
		}
		if strings.HasPrefix(i.Key, unpackPrefix) {
			t.Errorf("temporary unpack snapshot left: %s", i.Key)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// TestUnpackWebParallel unpacks a four-layer image whose layers the
// overlay snapshotter extracts in parallel.
func TestUnpackWebParallel(t *testing.T) {
	s := newService(t, "overlay", Options{})
	imgs := registerShared(t, s, "web:1")
	start := time.Now()
	if _, err := s.Unpack(ctx, imgs["web:1"]); err != nil {
		t.Fatal(err)
	}
	t.Logf("web:1 unpacked in %v", time.Since(start))
	root := mountImage(t, s, imgs["web:1"])
	if got := strings.TrimSpace(readFile(t, filepath.Join(root, "var/www/html/index.html"))); got != "<h1>served from a container</h1>" {
		t.Errorf("index.html = %q", got)
	}
	for _, p := range []string{"usr/sbin/nginx", "usr/bin/redis-server", "bin/bash", "etc/ssl/certs"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("/%s: %v", p, err)
		}
	}
	if st, err := os.Stat(root); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("root directory mode %v %v", st.Mode(), err)
	}
	if got := committedLayers(t, s); len(got) != 4 {
		t.Errorf("%d committed layers, want 4", len(got))
	}
}

// tarOf builds an uncompressed layer tar of name -> content (a name
// ending in "/" is a directory).
func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		if strings.HasSuffix(n, "/") {
			hdr = &tar.Header{Name: n, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(1700000000, 0)}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return buf.Bytes()
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func putBlob(t testing.TB, s *Service, mt string, b []byte) ocispec.Descriptor {
	t.Helper()
	desc, err := content.Ingest(ctx, s.Content(), bytes.NewReader(b), mt)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func putJSON(t testing.TB, s *Service, mt string, v any) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return putBlob(t, s, mt, b)
}

// makeImage writes a one-layer image and returns its manifest descriptor;
// edit may change the config and manifest before they are written.
func makeImage(t testing.TB, s *Service, layer []byte, edit func(*v1.ConfigFile, *ocispec.Manifest)) ocispec.Descriptor {
	t.Helper()
	ldesc := putBlob(t, s, ocispec.MediaTypeImageLayerGzip, gz(layer))
	diffID, _ := v1.NewHash(digest.FromBytes(layer).String())
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}, Config: v1.Config{Cmd: []string{"sh"}}, Created: v1.Time{Time: time.Now().UTC()}}
	man := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{ldesc}}
	if edit != nil {
		edit(&cfg, &man)
	}
	if man.Config.Digest == "" {
		man.Config = putJSON(t, s, ocispec.MediaTypeImageConfig, cfg)
	}
	return putJSON(t, s, ocispec.MediaTypeImageManifest, man)
}

func TestUnpackDiffIDMismatch(t *testing.T) {
	s := newService(t, "overlay", Options{})
	layer := tarOf(t, map[string]string{"a": "1"})
	wrong := digest.FromString("something else")
	desc := makeImage(t, s, layer, func(c *v1.ConfigFile, _ *ocispec.Manifest) {
		c.RootFS.DiffIDs[0], _ = v1.NewHash(wrong.String())
	})
	img, err := s.Register(ctx, desc, []string{"liar"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Unpack(ctx, img)
	if err == nil || !strings.Contains(err.Error(), "diff_id is "+wrong.String()) || !strings.Contains(err.Error(), digest.FromBytes(layer).String()) {
		t.Fatalf("unpack of a lying layer: %v", err)
	}
	if got := committedLayers(t, s); len(got) != 0 {
		t.Errorf("committed after a mismatch: %v", got)
	}
	// A layer that is not a tar.
	desc = makeImage(t, s, []byte("this is not a tar archive at all, just text long enough"), nil)
	img, err = s.Register(ctx, desc, []string{"notar"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unpack(ctx, img); err == nil || !strings.Contains(err.Error(), "layer "+img.Layers[0].Digest.String()) {
		t.Fatalf("unpack of a non-tar: %v", err)
	}
	if got := committedLayers(t, s); len(got) != 0 {
		t.Errorf("committed after a bad tar: %v", got)
	}
}

func TestRegisterRejectsBadImages(t *testing.T) {
	s := newService(t, "overlay", Options{})
	layer := tarOf(t, map[string]string{"a": "1"})
	for _, c := range []struct {
		name string
		edit func(*v1.ConfigFile, *ocispec.Manifest)
		want string
	}{
		{"layer size lie", func(_ *v1.ConfigFile, m *ocispec.Manifest) { m.Layers[0].Size += 10 }, "the manifest says"},
		{"missing layer", func(_ *v1.ConfigFile, m *ocispec.Manifest) {
			m.Layers[0].Digest = digest.FromString("absent")
		}, "blob not found"},
		{"diff_ids count", func(c *v1.ConfigFile, _ *ocispec.Manifest) { c.RootFS.DiffIDs = nil }, "0 diff_ids for 1 layers"},
		{"rootfs type", func(c *v1.ConfigFile, _ *ocispec.Manifest) { c.RootFS.Type = "other" }, "rootfs type"},
		{"layer media type", func(_ *v1.ConfigFile, m *ocispec.Manifest) { m.Layers[0].MediaType = "application/x-foo" }, "unsupported media type"},
		{"config media type", func(_ *v1.ConfigFile, m *ocispec.Manifest) {
			m.Config = putBlob(t, s, "application/vnd.cncf.helm.config.v1+json", []byte("{}"))
		}, "not a container image"},
		{"config not JSON", func(_ *v1.ConfigFile, m *ocispec.Manifest) {
			m.Config = putBlob(t, s, ocispec.MediaTypeImageConfig, []byte("{not json"))
		}, "not JSON"},
		{"config size lie", func(c *v1.ConfigFile, m *ocispec.Manifest) {
			m.Config = putJSON(t, s, ocispec.MediaTypeImageConfig, c)
			m.Config.Size--
		}, "the manifest says"},
		{"schema version", func(_ *v1.ConfigFile, m *ocispec.Manifest) { m.SchemaVersion = 1 }, "schemaVersion 1"},
	} {
		desc := makeImage(t, s, layer, c.edit)
		_, err := s.Register(ctx, desc, []string{"bad"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	notJSON := putBlob(t, s, ocispec.MediaTypeImageManifest, []byte("garbage"))
	if _, err := s.Register(ctx, notJSON, nil); err == nil || !strings.Contains(err.Error(), "not JSON") || !strings.Contains(err.Error(), notJSON.Digest.String()) {
		t.Errorf("manifest not JSON: %v", err)
	}
	good := makeImage(t, s, layer, nil)
	lie := good
	lie.Size++
	if _, err := s.Register(ctx, lie, nil); err == nil || !strings.Contains(err.Error(), "descriptor says") {
		t.Errorf("manifest size lie: %v", err)
	}
	if _, err := s.Register(ctx, good, []string{"UPPER"}); err == nil || !strings.Contains(err.Error(), "lowercase") {
		t.Errorf("bad name: %v", err)
	}
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("x"), Size: 1}
	if _, err := s.Register(ctx, absent, nil); !errors.Is(err, content.ErrNotFound) {
		t.Errorf("absent manifest: %v", err)
	}
	// An index: the host platform is picked; another one is named.
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		{MediaType: good.MediaType, Digest: good.Digest, Size: good.Size, Platform: &ocispec.Platform{OS: "linux", Architecture: "s390x"}},
	}}
	idxDesc := putJSON(t, s, ocispec.MediaTypeImageIndex, idx)
	if _, err := s.Register(ctx, idxDesc, nil); err == nil || !strings.Contains(err.Error(), "no manifest for platform linux/") || !strings.Contains(err.Error(), "linux/s390x") {
		t.Errorf("index without the platform: %v", err)
	}
	img, err := s.Register(ctx, idxDesc, []string{"multi"}, WithPlatform(ocispec.Platform{OS: "linux", Architecture: "s390x"}))
	if err != nil || img.Index == nil || img.Index.Digest != idxDesc.Digest || img.Manifest.Digest != good.Digest {
		t.Errorf("index with the platform: %+v %v", img, err)
	}
	imgs, _ := s.List(ctx, ListOptions{All: true})
	if len(imgs) != 1 {
		t.Errorf("%d images after the bad ones, want 1", len(imgs))
	}
}

// TestCorruptBlobOnDisk damages a committed layer blob: unpacking fails
// naming it, and the store stays usable.
func TestCorruptBlobOnDisk(t *testing.T) {
	s := newService(t, "overlay", Options{})
	imgs := registerShared(t, s, "busybox:1.35")
	img := imgs["busybox:1.35"]
	p, _ := s.ContentStore().BlobPath(img.Layers[0].Digest)
	os.Chmod(p, 0o644)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXXXXXX"), 5000)
	f.Close()
	_, err = s.Unpack(ctx, img)
	if err == nil || !strings.Contains(err.Error(), img.Layers[0].Digest.String()) {
		t.Fatalf("unpack of a corrupt blob: %v", err)
	}
	if got := committedLayers(t, s); len(got) != 0 {
		t.Errorf("committed: %v", got)
	}
	// Recover: delete the bad blob, write it again, unpack.
	if err := s.Content().Delete(ctx, img.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	copyBlobs(t, s, sharedLayout(t), img.Layers[0].Digest.String())
	if _, err := s.Unpack(ctx, img); err != nil {
		t.Fatal(err)
	}
	root := mountImage(t, s, img)
	if _, err := os.Lstat(filepath.Join(root, "bin/busybox")); err != nil {
		t.Error(err)
	}
}
