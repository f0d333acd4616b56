package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/image/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memStore is an in-memory content.Store with Ingest, for tests.
type memStore struct {
	mu    sync.Mutex
	blobs map[digest.Digest][]byte
}

func newMemStore() *memStore { return &memStore{blobs: map[digest.Digest][]byte{}} }

func (s *memStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.blobs[d]
	if !ok {
		return content.Info{}, fmt.Errorf("%s: %w", d, content.ErrNotFound)
	}
	return content.Info{Digest: d, Size: int64(len(p))}, nil
}

type memReaderAt struct{ *bytes.Reader }

func (memReaderAt) Close() error { return nil }

func (s *memStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("%s: %w", desc.Digest, content.ErrNotFound)
	}
	return memReaderAt{bytes.NewReader(p)}, nil
}

type memWriter struct {
	s    *memStore
	desc ocispec.Descriptor
	buf  bytes.Buffer
}

func (w *memWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *memWriter) Offset() int64               { return 0 }
func (w *memWriter) Close() error                { return nil }
func (w *memWriter) Commit() error {
	p := w.buf.Bytes()
	if int64(len(p)) != w.desc.Size {
		return fmt.Errorf("blob %s: size %d, expected %d", w.desc.Digest, len(p), w.desc.Size)
	}
	if got := digest.FromBytes(p); got != w.desc.Digest {
		return fmt.Errorf("blob digest %s, expected %s", got, w.desc.Digest)
	}
	w.s.mu.Lock()
	w.s.blobs[w.desc.Digest] = bytes.Clone(p)
	w.s.mu.Unlock()
	return nil
}

func (s *memStore) Writer(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	if err := desc.Digest.Validate(); err != nil || desc.Size < 0 {
		return nil, fmt.Errorf("bad descriptor %v", desc)
	}
	if _, err := s.Info(ctx, desc.Digest); err == nil {
		return nil, fmt.Errorf("%s: %w", desc.Digest, content.ErrExists)
	}
	return &memWriter{s: s, desc: desc}, nil
}

func (s *memStore) Ingest(ctx context.Context, r io.Reader, mediaType string) (ocispec.Descriptor, error) {
	var buf bytes.Buffer
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(&buf, h), r); err != nil {
		return ocispec.Descriptor{}, err
	}
	d := digest.NewDigest(digest.SHA256, h)
	s.mu.Lock()
	s.blobs[d] = buf.Bytes()
	s.mu.Unlock()
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(buf.Len())}, nil
}

func (s *memStore) Delete(ctx context.Context, d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blobs, d)
	return nil
}

func (s *memStore) Walk(ctx context.Context, fn func(content.Info) error) error {
	s.mu.Lock()
	var infos []content.Info
	for d, p := range s.blobs {
		infos = append(infos, content.Info{Digest: d, Size: int64(len(p))})
	}
	s.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Digest < infos[j].Digest })
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.blobs)
}

// noIngestStore hides memStore's Ingest.
type noIngestStore struct{ content.Store }

// tarDir writes the files under dir as a tar stream (an oci-archive when
// dir is a layout).
func tarDir(t testing.TB, w io.Writer, dir string) {
	t.Helper()
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.ModTime = time.Unix(0, 0)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}
