package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/content/local"
	"github.com/berth-project/berth/internal/testutil"
)

// tempDir is a directory named berth-* removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "berth-registry-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newStore(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.New(filepath.Join(tempDir(t), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ociLayout is the shared test images' OCI layout.
func ociLayout(t *testing.T) string {
	t.Helper()
	return filepath.Join(testutil.SharedImages(t), "oci")
}

func layoutBlob(t *testing.T, layout string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// image is one image of the layout, as its descriptors.
type image struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
}

// loadImage writes the image the layout names refName (manifest, config,
// layers) into cs.
func loadImage(t *testing.T, cs content.Store, refName string) image {
	t.Helper()
	layout := ociLayout(t)
	var idx ocispec.Index
	if err := json.Unmarshal(layoutBlobFile(t, filepath.Join(layout, "index.json")), &idx); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] != refName {
			continue
		}
		mb := layoutBlob(t, layout, m.Digest)
		var man ocispec.Manifest
		if err := json.Unmarshal(mb, &man); err != nil {
			t.Fatal(err)
		}
		desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}
		for _, b := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			f, err := os.Open(filepath.Join(layout, "blobs", "sha256", b.Digest.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			err = content.WriteBlob(ctx, cs, b, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := content.WriteBlob(ctx, cs, desc, bytes.NewReader(mb)); err != nil {
			t.Fatal(err)
		}
		return image{manifest: desc, config: man.Config, layers: man.Layers}
	}
	t.Fatalf("image %s not in %s", refName, layout)
	return image{}
}

func layoutBlobFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// recorder is a progress.Reporter keeping every status per id.
type recorder struct {
	mu       sync.Mutex
	statuses map[string][]string
}

func (r *recorder) Update(id, status string, current, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.statuses == nil {
		r.statuses = map[string][]string{}
	}
	l := r.statuses[id]
	if len(l) == 0 || l[len(l)-1] != status {
		r.statuses[id] = append(l, status)
	}
}

func (r *recorder) has(id, status string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.statuses[id] {
		if s == status {
			return true
		}
	}
	return false
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(r.statuses)
	return string(b)
}

// hashingHook is a LayerHook recording the digest of the bytes each layer
// streamed.
type hashingHook struct {
	mu  sync.Mutex
	got map[digest.Digest]digest.Digest
}

func (h *hashingHook) hook(desc ocispec.Descriptor, r io.Reader) error {
	d, err := digest.SHA256.FromReader(r)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.got == nil {
		h.got = map[digest.Digest]digest.Digest{}
	}
	h.got[desc.Digest] = d
	return nil
}

func hasBlob(t *testing.T, cs content.Store, d digest.Digest) bool {
	t.Helper()
	_, err := cs.Info(context.Background(), d)
	return err == nil
}
