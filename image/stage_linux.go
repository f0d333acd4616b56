package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/berth-project/berth/storage/archive"
	digest "github.com/opencontainers/go-digest"
)

// Stager extracts layers while pull or load still receives them, before
// the image (its config, so its diff IDs and parents) is known: each layer
// stream goes into a parentless temporary snapshot (an unpackPrefix key,
// so a killed process leaves only garbage that collection removes) named
// by the digest of what it decompressed to, its diff ID as computed, not
// as claimed. Unpack given WithStaged then places each staged layer whose
// diff ID the config lists on its real parent (a directory exchange) and
// commits it, instead of extracting it again; layers nobody claims are
// removed by Close. Staging needs an overlay-style snapshotter, whose
// layers do not depend on their parents' files; with another one Stage
// only reads its stream.
//
// A staged tree is the extraction of exactly the bytes whose digest names
// it, so it is correct for any image whose config lists that diff ID
// whatever blob it came from; the blob itself is still verified against
// its digest by the content store.
type Stager struct {
	s       *Service
	release func()
	mu      sync.Mutex
	staged  map[digest.Digest]string // diff ID -> temporary snapshot key
	closed  bool
	noStage bool // the snapshotter is not overlay-style
}

// NewStager returns a Stager holding a lease until Close.
func (s *Service) NewStager(ctx context.Context) (*Stager, error) {
	if s.sn == nil {
		return nil, errors.New("stage layers: the image store has no snapshotter")
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return nil, err
	}
	return &Stager{s: s, release: release, staged: map[digest.Digest]string{}}, nil
}

// Stage extracts the layer blob read from r (gzip, zstd, bzip2 or plain
// tar) into a temporary snapshot. r is read to its end. blob, when set,
// is the digest r's bytes are verified to have when r ends with io.EOF
// (pull's and load's hooks guarantee that): an uncompressed layer's diff
// ID is then blob itself and is not computed a second time. A stream that is
// not a layer, or that fails to extract, stages nothing and is no error:
// Unpack extracts that layer from its blob and reports what is wrong. The
// error returned is r's own (a failed download, a blob that failed
// verification), and nothing is staged then.
func (st *Stager) Stage(ctx context.Context, blob digest.Digest, r io.Reader) error {
	if st == nil {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	rr := &readErr{r: r}
	err := st.stage(ctx, blob, rr)
	// Whatever happened, the producer must see its stream consumed.
	if _, cerr := io.Copy(io.Discard, rr); cerr != nil && rr.err == nil {
		rr.err = cerr
	}
	if rr.err != nil {
		return rr.err
	}
	_ = err // a stream that does not extract is Unpack's to report
	return nil
}

// readErr remembers the first error of r other than io.EOF.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func (st *Stager) stage(ctx context.Context, blob digest.Digest, r *readErr) error {
	st.mu.Lock()
	skip := st.noStage || st.closed
	st.mu.Unlock()
	if skip {
		return nil
	}
	s := st.s
	var b [6]byte
	rand.Read(b[:])
	key := unpackPrefix + "staged-" + hex.EncodeToString(b[:])
	if _, err := s.sn.Prepare(key, "", nil); err != nil {
		return err
	}
	dir, overlay, err := s.sn.ApplyDir(key)
	if err != nil || !overlay {
		s.sn.Remove(key)
		if err == nil {
			st.mu.Lock()
			st.noStage = true
			st.mu.Unlock()
		}
		return err
	}
	diffID, err := s.extract(ctx, dir, true, blob, r)
	if err == nil && r.err != nil {
		err = r.err
	}
	if err == nil {
		// Read to the end: a download's verification error comes last.
		if _, cerr := io.Copy(io.Discard, r); cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		s.sn.Remove(key)
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, dup := st.staged[diffID]; dup || st.closed {
		s.sn.Remove(key)
		return nil
	}
	st.staged[diffID] = key
	return nil
}

// take hands the staged snapshot of diffID over to the caller.
func (st *Stager) take(diffID digest.Digest) (string, bool) {
	if st == nil {
		return "", false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	key, ok := st.staged[diffID]
	delete(st.staged, diffID)
	return key, ok
}

// has reports whether diffID is staged.
func (st *Stager) has(diffID digest.Digest) bool {
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.staged[diffID]
	return ok
}

// Close removes the staged layers no Unpack took and releases the lease.
// Call it after the producers (pull's or load's hooks) have returned.
func (st *Stager) Close() {
	if st == nil {
		return
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.closed = true
	left := st.staged
	st.staged = nil
	st.mu.Unlock()
	for _, k := range left {
		st.s.sn.Remove(k)
	}
	st.release()
}

// WithStaged lets Unpack use the layers st has staged.
func WithStaged(st *Stager) UnpackOption {
	return func(c *unpackConfig) { c.staged = st }
}

// extract decompresses r into dir and returns the digest of the tar it
// decompressed to. The tar is read to its end (padding after the archive
// included, so the digest covers all of it); r may have more (a
// compressed stream's trailer) for the caller to read. When r is not
// compressed and blob is set, blob is returned without hashing (the
// caller's reader verifies it).
func (s *Service) extract(ctx context.Context, dir string, overlay bool, blob digest.Digest, r io.Reader) (digest.Digest, error) {
	plain, closeFn, isPlain, err := decompress(r)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer closeFn()
	var h digest.Digester
	tee := io.Reader(ctxRead{ctx, plain})
	if !isPlain || blob == "" || blob.Algorithm() != digest.SHA256 {
		h = digest.SHA256.Digester()
		tee = io.TeeReader(tee, h.Hash())
	}
	opts := s.opts.Apply
	opts.Whiteouts = archive.WhiteoutDelete
	if overlay {
		opts.Whiteouts = archive.WhiteoutOverlay
	}
	if _, err := archive.Apply(dir, tee, opts); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if h == nil {
		return blob, nil
	}
	return h.Digest(), nil
}

type ctxRead struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxRead) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
