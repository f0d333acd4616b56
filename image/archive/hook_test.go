package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/testutil"
)

// hookLog records what a BlobHook saw of each entry.
type hookLog struct {
	mu   sync.Mutex
	seen map[digest.Digest]hookSeen // by the digest of the bytes seen
}

type hookSeen struct {
	named digest.Digest // what the hook was told
	size  int64
	err   error // how the stream ended (nil: io.EOF)
}

func (h *hookLog) hook(desc ocispec.Descriptor, r io.Reader) error {
	// Slow reader: the archive is read on meanwhile.
	b, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 64)))
	if err == nil {
		var rest []byte
		rest, err = io.ReadAll(r)
		b = append(b, rest...)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if desc.Size != 0 && err == nil && int64(len(b)) != desc.Size {
		err = errors.New("size differs from the descriptor")
	}
	h.seen[digest.FromBytes(b)] = hookSeen{named: desc.Digest, size: int64(len(b)), err: err}
	return nil
}

// TestLoadBlobHook: every layer of an archive reaches the hook whole,
// ending with io.EOF, while it is stored; small entries do not; a blob
// the store already has ends with an error; and a hook that gives up
// does not fail the load.
func TestLoadBlobHook(t *testing.T) {
	cs := newMemStore()
	docker := saveToFile(t, cs, sharedItems(t, cs)[:1], FormatDocker)
	p, err := os.ReadFile(docker)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{docker, "old.tar"} {
		data := p
		if name == "old.tar" {
			data = gunzip(t, readAll(t, testutil.SharedImages(t)+"/layers.docker.tar.gz"))
		}
		t.Run(strings.TrimSuffix(name[strings.LastIndex(name, "/")+1:], ".tar"), func(t *testing.T) {
			h := &hookLog{seen: map[digest.Digest]hookSeen{}}
			dst := newMemStore()
			loaded, err := LoadWith(context.Background(), bytes.NewReader(data), dst, LoadOptions{BlobHook: h.hook})
			if err != nil {
				t.Fatal(err)
			}
			big := 0
			for d, b := range dst.blobs {
				if len(b) < HookMinSize {
					if _, ok := h.seen[d]; ok {
						t.Errorf("hook got small entry %s (%d bytes)", d, len(b))
					}
					continue
				}
				big++
				s, ok := h.seen[d]
				switch {
				case !ok:
					t.Errorf("hook did not get all of blob %s (%d bytes)", d, len(b))
				case s.err != nil:
					t.Errorf("blob %s: hook stream ended with %v", d, s.err)
				case s.named != "" && s.named != d:
					t.Errorf("blob %s: hook told %s", d, s.named)
				}
			}
			if big == 0 || len(loaded) == 0 {
				t.Fatalf("no large blob in the archive (%d images)", len(loaded))
			}

			// Loaded again into the same store: each blob is there
			// already, so no hook stream ends well.
			h2 := &hookLog{seen: map[digest.Digest]hookSeen{}}
			if _, err := LoadWith(context.Background(), bytes.NewReader(data), dst, LoadOptions{BlobHook: h2.hook}); err != nil {
				t.Fatal(err)
			}
			for d, s := range h2.seen {
				if s.err == nil && s.named != "" {
					t.Errorf("second load: hook stream of %s (%d bytes) ended well though the store had the blob", d, s.size)
				}
			}

			// A hook that stops reading at once fails nothing.
			dst3 := newMemStore()
			quit := func(ocispec.Descriptor, io.Reader) error { return errors.New("no thanks") }
			if _, err := LoadWith(context.Background(), bytes.NewReader(data), dst3, LoadOptions{BlobHook: quit}); err != nil {
				t.Fatalf("load with a hook that gives up: %v", err)
			}
			if dst3.count() != dst.count() {
				t.Errorf("stored %d blobs, want %d", dst3.count(), dst.count())
			}
		})
	}
}
