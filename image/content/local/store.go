// Package local is berth's content.Store on a local directory, in the
// layout content.go describes (blobs/sha256/<hex>, ingest/<hex>/{data,ref}).
//
// One writer per digest exists at a time across processes: a Writer holds
// an exclusive flock(2) on its ingest data file, and checks after locking
// that the file it locked is still the one at the ingest path (a previous
// writer may have committed it by rename meanwhile). A committed blob is
// published by fsync of the data file, rename(2) into blobs/sha256 and
// fsync of that directory: one flush per blob, enough that a crash or
// power loss never leaves a published blob with missing bytes, without
// syncing every write. An ingest killed at any point is resumed by the next
// Writer; its bytes are hashed again on resume, and Commit's digest check
// catches any that a crash left wrong.
//
// It imports only the content contract.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berth-project/berth/image/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is a content.Store on a directory.
type Store struct {
	root string
}

var _ content.Store = (*Store)(nil)
var _ content.Ingester = (*Store)(nil)

// New opens (creating if needed) the store at root.
func New(root string) (*Store, error) {
	for _, d := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "ingest")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

func checkDigest(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("invalid digest %q: %w", d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %s: unsupported algorithm %s (only sha256)", d, d.Algorithm())
	}
	return d.Encoded(), nil
}

func (s *Store) blobPath(hex string) string { return filepath.Join(s.root, "blobs", "sha256", hex) }
func (s *Store) ingestDir(hex string) string {
	return filepath.Join(s.root, "ingest", hex)
}

// BlobPath is the file of a committed blob (which may not exist).
func (s *Store) BlobPath(dgst digest.Digest) (string, error) {
	h, err := checkDigest(dgst)
	if err != nil {
		return "", err
	}
	return s.blobPath(h), nil
}

// Info implements content.Store.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	h, err := checkDigest(dgst)
	if err != nil {
		return content.Info{}, err
	}
	st, err := os.Stat(s.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return content.Info{}, fmt.Errorf("blob %s: %w", dgst, content.ErrNotFound)
	}
	if err != nil {
		return content.Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	return content.Info{Digest: dgst, Size: st.Size(), Created: st.ModTime()}, nil
}

type readerAt struct {
	*os.File
	size int64
}

func (r readerAt) Size() int64 { return r.size }

// ReaderAt implements content.Store. A descriptor whose Size is set must
// agree with the stored blob.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	h, err := checkDigest(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, content.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if desc.Size != 0 && st.Size() != desc.Size {
		f.Close()
		return nil, fmt.Errorf("blob %s: descriptor says %d bytes, the stored blob has %d", desc.Digest, desc.Size, st.Size())
	}
	return readerAt{File: f, size: st.Size()}, nil
}

// Delete implements content.Store.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	h, err := checkDigest(dgst)
	if err != nil {
		return err
	}
	err = os.Remove(s.blobPath(h))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", dgst, content.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", dgst, err)
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Walk implements content.Store.
func (s *Store) Walk(ctx context.Context, fn func(content.Info) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, e := range ents {
		if !isHex64(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		if err := fn(content.Info{Digest: digest.NewDigestFromEncoded(digest.SHA256, e.Name()), Size: st.Size(), Created: st.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// writer is an ingest in progress, holding the flock on its data file.
type writer struct {
	s      *Store
	desc   ocispec.Descriptor
	hex    string
	f      *os.File
	h      hash.Hash
	offset int64
	done   bool
}

// Writer implements content.Store.
func (s *Store) Writer(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	h, err := checkDigest(desc.Digest)
	if err != nil {
		return nil, err
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("blob %s: negative size %d", desc.Digest, desc.Size)
	}
	for {
		if _, err := os.Stat(s.blobPath(h)); err == nil {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, content.ErrExists)
		}
		dir := s.ingestDir(h)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("ingest %s: %w", desc.Digest, err)
		}
		data := filepath.Join(dir, "data")
		f, err := os.OpenFile(data, os.O_RDWR|os.O_CREATE, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the directory was removed by a committing writer
		}
		if err != nil {
			return nil, fmt.Errorf("ingest %s: %w", desc.Digest, err)
		}
		if err := lockFile(ctx, f); err != nil {
			f.Close()
			return nil, fmt.Errorf("ingest %s: wait for the other writer: %w", desc.Digest, err)
		}
		if !sameFile(f, data) {
			f.Close() // committed or discarded by the writer we waited for
			continue
		}
		if _, err := os.Stat(s.blobPath(h)); err == nil {
			removeIngest(dir)
			f.Close()
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, content.ErrExists)
		}
		w := &writer{s: s, desc: desc, hex: h, f: f, h: digest.SHA256.Hash()}
		if err := w.resume(); err != nil {
			f.Close()
			return nil, err
		}
		return w, nil
	}
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// removeIngest removes an ingest directory's files and the directory; a
// directory another writer has just re-created a data file in stays.
func removeIngest(dir string) {
	os.Remove(filepath.Join(dir, "ref"))
	os.Remove(filepath.Join(dir, "data"))
	os.Remove(dir)
}

// resume hashes what an earlier writer left, or starts over when the
// ingest was for a different size or holds more bytes than the blob.
func (w *writer) resume() error {
	dir := w.s.ingestDir(w.hex)
	var prev ocispec.Descriptor
	if b, err := os.ReadFile(filepath.Join(dir, "ref")); err == nil {
		if json.Unmarshal(b, &prev) != nil || prev.Digest != w.desc.Digest || prev.Size != w.desc.Size {
			prev = ocispec.Descriptor{}
		}
	}
	st, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
	}
	if prev.Digest == "" || st.Size() > w.desc.Size {
		if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
		}
		ref, _ := json.Marshal(ocispec.Descriptor{MediaType: w.desc.MediaType, Digest: w.desc.Digest, Size: w.desc.Size})
		if err := os.WriteFile(filepath.Join(dir, "ref"), ref, 0o644); err != nil {
			return fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
		}
		return nil
	}
	n, err := io.Copy(w.h, io.NewSectionReader(w.f, 0, st.Size()))
	if err != nil {
		return fmt.Errorf("ingest %s: read the partial blob: %w", w.desc.Digest, err)
	}
	w.offset = n
	if _, err := w.f.Seek(n, io.SeekStart); err != nil {
		return fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
	}
	return nil
}

func (w *writer) Offset() int64 { return w.offset }

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("ingest %s: write after commit or close", w.desc.Digest)
	}
	if w.offset+int64(len(p)) > w.desc.Size {
		return 0, fmt.Errorf("blob %s: more than the expected %d bytes", w.desc.Digest, w.desc.Size)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			// A full disk: keeping the partial blob to resume would only
			// hold the space the next command needs.
			w.Close()
			removeIngest(w.s.ingestDir(w.hex))
		}
		return n, fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
	}
	return n, nil
}

// Commit implements content.Writer.
func (w *writer) Commit() error {
	if w.done {
		return fmt.Errorf("ingest %s: commit after commit or close", w.desc.Digest)
	}
	dir := w.s.ingestDir(w.hex)
	if w.offset != w.desc.Size {
		// Short: keep the ingest to be resumed.
		return fmt.Errorf("blob %s: got %d bytes, expected %d", w.desc.Digest, w.offset, w.desc.Size)
	}
	got := digest.NewDigest(digest.SHA256, w.h)
	if got != w.desc.Digest {
		removeIngest(dir)
		w.Close()
		return fmt.Errorf("blob digest mismatch: expected %s, got %s (%d bytes)", w.desc.Digest, got, w.offset)
	}
	if err := w.f.Chmod(0o444); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.desc.Digest, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.desc.Digest, err)
	}
	if err := os.Rename(filepath.Join(dir, "data"), w.s.blobPath(w.hex)); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.desc.Digest, err)
	}
	if err := syncDir(filepath.Dir(w.s.blobPath(w.hex))); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.desc.Digest, err)
	}
	removeIngest(dir)
	w.Close()
	return nil
}

// Close implements content.Writer.
func (w *writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.f.Close() // releases the flock
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Ingest implements content.Ingester: r is written to a private ingest
// directory ("tmp-<random>", which no digest names) while hashed, then
// published under its digest. Two processes ingesting the same bytes both
// succeed with the one blob.
func (s *Store) Ingest(ctx context.Context, r io.Reader, mediaType string) (ocispec.Descriptor, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	dir := filepath.Join(s.root, "ingest", "tmp-"+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest: %w", err)
	}
	defer os.RemoveAll(dir)
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest: %w", err)
	}
	defer f.Close()
	if err := lockFile(ctx, f); err != nil { // marks the ingest live for PruneIngests
		return ocispec.Descriptor{}, fmt.Errorf("ingest: %w", err)
	}
	h := digest.SHA256.Digester()
	n, err := io.Copy(io.MultiWriter(f, h.Hash()), ctxReader{ctx, r})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest: %w", err)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: h.Digest(), Size: n}
	dst := s.blobPath(desc.Digest.Encoded())
	if _, err := os.Stat(dst); err == nil {
		return desc, nil
	}
	if err := f.Chmod(0o444); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	if err := f.Sync(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	// Same bytes under the same name: replacing a blob another process
	// published meanwhile is harmless.
	if err := os.Rename(f.Name(), dst); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	return desc, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// PruneIngests removes ingests no writer holds that were last written
// before the given age, and returns how many it removed.
func (s *Store) PruneIngests(ctx context.Context, olderThan time.Duration) (int, error) {
	dir := filepath.Join(s.root, "ingest")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("prune ingests: %w", err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() || !(isHex64(e.Name()) || strings.HasPrefix(e.Name(), "tmp-")) {
			continue
		}
		d := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(filepath.Join(d, "data"), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			if st, err := os.Stat(d); err == nil && time.Since(st.ModTime()) > olderThan {
				os.Remove(filepath.Join(d, "ref"))
				if os.Remove(d) == nil {
					n++
				}
			}
			continue
		}
		if err != nil {
			continue
		}
		st, err := f.Stat()
		if err != nil || time.Since(st.ModTime()) < olderThan || !tryLockFile(f) {
			f.Close()
			continue
		}
		if sameFile(f, filepath.Join(d, "data")) {
			removeIngest(d)
			os.RemoveAll(d)
			n++
		}
		f.Close()
	}
	return n, nil
}
