package image

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

// TestUnpackLayerStreaming feeds each layer of layers:1 to UnpackLayer
// from a pipe, all at once, as a pull unpacking while it downloads would:
// children arrive before their parents are committed.
func TestUnpackLayerStreaming(t *testing.T) {
	for _, driver := range []string{"overlay", "vfs"} {
		t.Run(driver, func(t *testing.T) {
			s := newService(t, driver, Options{})
			imgs := registerShared(t, s, "layers:1")
			img := imgs["layers:1"]
			layout := sharedLayout(t)
			var wg sync.WaitGroup
			errs := make([]error, len(img.Layers))
			tops := make([]string, len(img.Layers))
			for i := len(img.Layers) - 1; i >= 0; i-- { // top first
				parent := ""
				if i > 0 {
					parent = img.ChainIDs[i-1].String()
				}
				pr, pw := io.Pipe()
				go func(d digest.Digest) {
					f, err := os.Open(filepath.Join(layout, "blobs", "sha256", d.Encoded()))
					if err != nil {
						pw.CloseWithError(err)
						return
					}
					defer f.Close()
					_, err = io.Copy(pw, f)
					pw.CloseWithError(err)
				}(img.Layers[i].Digest)
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					tops[i], errs[i] = s.UnpackLayer(ctx, img.Layers[i], img.DiffIDs[i], parent, pr)
				}(i)
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("layer %d: %v", i+1, err)
				}
				if tops[i] != img.ChainIDs[i].String() {
					t.Errorf("layer %d: chain %s, want %s", i+1, tops[i], img.ChainIDs[i])
				}
			}
			if got := committedLayers(t, s); len(got) != 4 {
				t.Errorf("%d committed layers", len(got))
			}
			checkLayersImage(t, mountImage(t, s, img))
			// A wrong diff ID: error, nothing committed.
			f, _ := os.Open(filepath.Join(layout, "blobs", "sha256", img.Layers[1].Digest.Encoded()))
			defer f.Close()
			_, err := s.UnpackLayer(ctx, img.Layers[1], digest.FromString("x"), "", f)
			if err == nil || !strings.Contains(err.Error(), "diff_id") {
				t.Errorf("wrong diff ID: %v", err)
			}
			if got := committedLayers(t, s); len(got) != 4 {
				t.Errorf("%d committed layers after the bad one", len(got))
			}
		})
	}
}
