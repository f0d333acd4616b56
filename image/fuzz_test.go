package image

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/berth-project/berth/image/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzRegister registers a fuzzed manifest (or index) and config: the
// placeholders @CONFIG@, @CSIZE@, @LAYER@ and @LSIZE@ in the manifest are
// replaced by the config blob's and a real layer blob's digest and size,
// so the fuzzer reaches past the blob look-ups. Register must never
// panic, and an image it accepts must be consistent.
func FuzzRegister(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"@CONFIG@","size":@CSIZE@},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"@LAYER@","size":@LSIZE@}]}`),
		[]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:a78aba41dc4f0d1b62e62d80431c040e3ad0fa3092c365065c65fc25d59e3179"]},"config":{"Cmd":["sh"]}}`))
	dir, err := os.MkdirTemp("", "berth-image-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	s, err := Open(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	layer, err := content.Ingest(ctx, s.Content(), bytes.NewReader([]byte("layer bytes")), ocispec.MediaTypeImageLayerGzip)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, manifest, config []byte) {
		cdesc, err := content.Ingest(ctx, s.Content(), bytes.NewReader(config), ocispec.MediaTypeImageConfig)
		if err != nil {
			t.Fatal(err)
		}
		m := bytes.ReplaceAll(manifest, []byte("@CONFIG@"), []byte(cdesc.Digest))
		m = bytes.ReplaceAll(m, []byte("@CSIZE@"), []byte(itoa(cdesc.Size)))
		m = bytes.ReplaceAll(m, []byte("@LAYER@"), []byte(layer.Digest))
		m = bytes.ReplaceAll(m, []byte("@LSIZE@"), []byte(itoa(layer.Size)))
		mdesc, err := content.Ingest(ctx, s.Content(), bytes.NewReader(m), "")
		if err != nil {
			t.Fatal(err)
		}
		img, err := s.Register(ctx, mdesc, []string{"fuzz:x"})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(img.Layers) != len(img.DiffIDs) || img.ID != img.ConfigDescriptor.Digest.String() || img.Config == nil {
			t.Fatalf("inconsistent image %+v", img)
		}
		got, err := s.Get(ctx, "fuzz:x")
		if err != nil || got.ID != img.ID {
			t.Fatalf("Get after Register: %v", err)
		}
	})
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
