// Package content is berth's content-addressed blob store: image manifests,
// indexes, configs and layer blobs, each stored once under its digest.
//
// Layout under the store's directory:
//
//	blobs/sha256/<hex>     committed blobs, read-only, verified
//	ingest/<hex>/data      a blob being written; survives the writer's death
//	ingest/<hex>/ref       the descriptor being written (JSON)
//
// A blob becomes visible only by rename(2) of a fully written and verified
// ingest file, so readers never see a partial blob, and a writer killed at
// any moment leaves at most an ingest directory that the next Writer for the
// same digest resumes from (a pull that dies restarts where it stopped).
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotFound is returned (wrapped) for a blob the store does not have.
var ErrNotFound = errors.New("blob not found")

// Info describes a committed blob.
type Info struct {
	Digest  digest.Digest
	Size    int64
	Created time.Time
}

// Store is the blob store. Implementations are safe for use by many
// goroutines and many processes at once.
type Store interface {
	// Info reports a committed blob, or an error wrapping ErrNotFound.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// ReaderAt opens a committed blob.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
	// Writer opens (or resumes) the ingest of desc, whose Digest and Size
	// must be set. If the blob is already committed it returns an error
	// wrapping ErrExists. Only one writer per digest exists at a time
	// across processes; a second caller waits for the first.
	Writer(ctx context.Context, desc ocispec.Descriptor) (Writer, error)
	// Delete removes a committed blob.
	Delete(ctx context.Context, dgst digest.Digest) error
	// Walk calls fn for each committed blob.
	Walk(ctx context.Context, fn func(Info) error) error
}

// ErrExists is returned (wrapped) by Writer for a blob already committed.
var ErrExists = errors.New("blob already exists")

// ReaderAt reads a committed blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Writer writes one blob. Offset tells how many bytes a resumed ingest
// already holds; the caller sends only what follows (an HTTP Range request,
// say). Commit verifies size and digest over all bytes, then publishes the
// blob atomically; a mismatch is an error naming the expected and actual
// digest or size, and discards the ingest.
type Writer interface {
	io.Writer
	Offset() int64
	Commit() error
	// Close releases the writer; an uncommitted ingest stays on disk to be
	// resumed later.
	Close() error
}

// WriteBlob copies the whole blob read from r (from its first byte) into
// the store and commits it; bytes a resumed ingest already holds are
// skipped. A blob that already exists is not an error.
func WriteBlob(ctx context.Context, s Store, desc ocispec.Descriptor, r io.Reader) error {
	w, err := s.Writer(ctx, desc)
	if errors.Is(err, ErrExists) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if off := w.Offset(); off > 0 {
		if sk, ok := r.(io.Seeker); ok {
			_, err = sk.Seek(off, io.SeekCurrent)
		} else {
			_, err = io.CopyN(io.Discard, r, off)
		}
		if err != nil {
			return err
		}
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.Commit()
}

// ReadBlob reads a whole (small) committed blob: a manifest, index or config.
func ReadBlob(ctx context.Context, s Store, desc ocispec.Descriptor) ([]byte, error) {
	ra, err := s.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	p := make([]byte, ra.Size())
	if _, err := ra.ReadAt(p, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return p, nil
}

// Ingester is implemented by stores that can take a blob whose digest is
// not known up front (a layer being compressed, a blob read from a docker
// archive): the store writes it to a temporary ingest while hashing, then
// publishes it under the computed digest.
type Ingester interface {
	Ingest(ctx context.Context, r io.Reader, mediaType string) (ocispec.Descriptor, error)
}

// Ingest writes the whole blob read from r into s and returns its
// descriptor (digest, size and mediaType). It uses s's Ingester when s has
// one; otherwise it spools r to a temporary file to learn the digest
// first. A blob that already exists is not an error.
func Ingest(ctx context.Context, s Store, r io.Reader, mediaType string) (ocispec.Descriptor, error) {
	if in, ok := s.(Ingester); ok {
		return in.Ingest(ctx, r, mediaType)
	}
	f, err := os.CreateTemp("", "berth-ingest-")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("spool blob: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	dg := digest.Canonical.Digester()
	n, err := io.Copy(io.MultiWriter(f, dg.Hash()), r)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("spool blob: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: dg.Digest(), Size: n}
	return desc, WriteBlob(ctx, s, desc, f)
}
