package image

import (
	"bufio"
	"compress/bzip2"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/progress"
	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Snapshot labels and key prefixes the image store uses.
const (
	// LabelDiffID is set on each committed layer snapshot.
	LabelDiffID = "berth.image.diffid"
	// unpackPrefix starts the keys of layers being unpacked; collection
	// removes such snapshots left by a killed process.
	unpackPrefix = "berth-unpack-"
)

// UnpackOption tunes Unpack and UnpackLayer.
type UnpackOption func(*unpackConfig)

type unpackConfig struct {
	progress progress.Reporter
	staged   *Stager
}

// WithProgress reports each layer's extraction ("Extracting" with bytes
// read of the compressed blob, then "Extracted") under its short digest.
func WithProgress(r progress.Reporter) UnpackOption {
	return func(c *unpackConfig) { c.progress = r }
}

func unpackOptions(opts []UnpackOption) unpackConfig {
	c := unpackConfig{}
	for _, o := range opts {
		o(&c)
	}
	c.progress = progress.Or(c.progress)
	return c
}

func shortDigest(d digest.Digest) string {
	h := d.Encoded()
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

func tempKey(chain digest.Digest) string {
	var b [6]byte
	rand.Read(b[:])
	return unpackPrefix + shortDigest(chain) + "-" + hex.EncodeToString(b[:])
}

// Unpack makes sure every layer of img is a committed snapshot named by
// its chain ID (shared by all images) and returns the top chain ID, the
// parent for a container's root filesystem. Layers already unpacked are
// skipped. Each layer's diff ID is checked after decompression; a
// mismatch is an error and leaves no snapshot. With an overlay-style
// snapshotter the missing layers are extracted in parallel.
func (s *Service) Unpack(ctx context.Context, img *Image, opts ...UnpackOption) (string, error) {
	if s.sn == nil {
		return "", errors.New("unpack: the image store has no snapshotter")
	}
	if len(img.Layers) != len(img.DiffIDs) {
		return "", fmt.Errorf("%w: image %s: %d layers, %d diff IDs", ErrInvalid, img.ID, len(img.Layers), len(img.DiffIDs))
	}
	s.sweepUnpacks(ctx)
	release, err := s.Lease(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	if err := s.unpack(ctx, img.Layers, img.DiffIDs, unpackOptions(opts)); err != nil {
		return "", fmt.Errorf("unpack image %s: %w", img.ID, err)
	}
	return img.TopChainID(), nil
}

func (s *Service) committed(key string) bool {
	info, err := s.sn.Stat(key)
	return err == nil && info.Kind == snapshot.KindCommitted
}

// unpack unpacks the layers (bottom first) whose chain IDs are missing.
func (s *Service) unpack(ctx context.Context, layers []ocispec.Descriptor, diffIDs []digest.Digest, cfg unpackConfig) error {
	chain := ChainIDs(diffIDs)
	first := len(chain)
	for first > 0 && !s.committed(chain[first-1].String()) {
		first--
	}
	if first == len(chain) {
		return s.recordSizes(ctx, chain)
	}
	parentOf := func(i int) string {
		if i == 0 {
			return ""
		}
		return chain[i-1].String()
	}
	// The first missing layer goes on its real parent; what the
	// snapshotter gives as its apply directory tells the mode.
	tmp0 := tempKey(chain[first])
	if _, err := s.sn.Prepare(tmp0, parentOf(first), map[string]string{LabelDiffID: diffIDs[first].String()}); err != nil {
		return fmt.Errorf("layer %s: prepare snapshot: %w", layers[first].Digest, err)
	}
	_, overlay, err := s.sn.ApplyDir(tmp0)
	if err != nil {
		s.sn.Remove(tmp0)
		return fmt.Errorf("layer %s: %w", layers[first].Digest, err)
	}
	anyStaged := false
	for i := first; i < len(chain); i++ {
		anyStaged = anyStaged || cfg.staged.has(diffIDs[i])
	}
	if !overlay || (first == len(chain)-1 && !anyStaged) {
		for i := first; i < len(chain); i++ {
			key := tmp0
			if i > first {
				key = tempKey(chain[i])
				if _, err := s.sn.Prepare(key, parentOf(i), map[string]string{LabelDiffID: diffIDs[i].String()}); err != nil {
					return fmt.Errorf("layer %s: prepare snapshot: %w", layers[i].Digest, err)
				}
			}
			if err := s.applyBlob(ctx, key, layers[i], diffIDs[i], cfg); err != nil {
				s.sn.Remove(key)
				return err
			}
			if err := s.commitLayer(key, chain[i], diffIDs[i]); err != nil {
				return fmt.Errorf("layer %s: %w", layers[i].Digest, err)
			}
		}
		return s.recordSizes(ctx, chain)
	}

	// Overlay: each layer is a directory of its own, so all are
	// extracted at once into parentless snapshots (or were, by a Stager),
	// then moved onto their real parents bottom up (renameat2
	// RENAME_EXCHANGE of the two directories) and committed.
	n := len(chain) - first
	keys := make([]string, n)
	keys[0] = tmp0
	staged := make([]bool, n)
	for j := 0; j < n; j++ {
		if k, ok := cfg.staged.take(diffIDs[first+j]); ok {
			if j == 0 {
				s.sn.Remove(tmp0)
			}
			keys[j], staged[j] = k, true
		}
	}
	errs := make([]error, n)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, max(runtime.NumCPU(), 2))
	var wg sync.WaitGroup
	for j := 0; j < n; j++ {
		i := first + j
		if staged[j] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if j > 0 {
				k := tempKey(chain[i])
				if _, err := s.sn.Prepare(k, "", map[string]string{LabelDiffID: diffIDs[i].String()}); err != nil {
					errs[j] = fmt.Errorf("layer %s: prepare snapshot: %w", layers[i].Digest, err)
					cancel()
					return
				}
				keys[j] = k
			}
			if err := s.applyBlob(cctx, keys[j], layers[i], diffIDs[i], cfg); err != nil {
				errs[j] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	cleanup := func(from int) {
		for j := from; j < n; j++ {
			if keys[j] != "" {
				s.sn.Remove(keys[j])
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		cleanup(0)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The first error, not the cancellations it caused.
		for _, e := range errs {
			if e != nil && !errors.Is(e, context.Canceled) {
				return e
			}
		}
		return err
	}
	for j := 0; j < n; j++ {
		i := first + j
		if staged[j] {
			cfg.progress.Update(shortDigest(layers[i].Digest), "Extracted", layers[i].Size, layers[i].Size)
		}
		if staged[j] && i == 0 {
			// A staged base layer is parentless already.
			if err := s.commitLayer(keys[j], chain[i], diffIDs[i]); err != nil {
				cleanup(j + 1)
				return fmt.Errorf("layer %s: %w", layers[i].Digest, err)
			}
			continue
		}
		if j > 0 || staged[j] {
			if err := s.moveOnto(ctx, keys[j], chain[i], parentOf(i), diffIDs[i], layers[i], cfg); err != nil {
				cleanup(j)
				return err
			}
			continue
		}
		if err := s.commitLayer(keys[j], chain[i], diffIDs[i]); err != nil {
			cleanup(j + 1)
			return fmt.Errorf("layer %s: %w", layers[i].Digest, err)
		}
	}
	return s.recordSizes(ctx, chain)
}

// moveOnto commits the layer extracted into the parentless snapshot tmp
// as chain on top of parent, and removes tmp.
func (s *Service) moveOnto(ctx context.Context, tmp string, chain digest.Digest, parent string, diffID digest.Digest, layer ocispec.Descriptor, cfg unpackConfig) error {
	defer s.sn.Remove(tmp)
	if s.committed(chain.String()) {
		return nil // another process made it meanwhile
	}
	fin := tempKey(chain)
	if _, err := s.sn.Prepare(fin, parent, map[string]string{LabelDiffID: diffID.String()}); err != nil {
		return fmt.Errorf("layer %s: prepare snapshot: %w", layer.Digest, err)
	}
	src, _, err := s.sn.ApplyDir(tmp)
	if err == nil {
		var dst string
		if dst, _, err = s.sn.ApplyDir(fin); err == nil {
			err = exchangeDirs(src, dst)
		}
	}
	if err != nil {
		// No exchange here (another filesystem, an old kernel): extract
		// the layer again in place.
		if err := s.applyBlob(ctx, fin, layer, diffID, cfg); err != nil {
			s.sn.Remove(fin)
			return err
		}
	}
	if err := s.commitLayer(fin, chain, diffID); err != nil {
		return fmt.Errorf("layer %s: %w", layer.Digest, err)
	}
	return nil
}

// exchangeDirs swaps the layer tree in src with the empty directory dst.
// dst's root owner and mode (its parent's, set by Prepare) go to the
// layer's root unless the layer set its own.
func exchangeDirs(src, dst string) error {
	var ss, ds unix.Stat_t
	if err := unix.Lstat(src, &ss); err != nil {
		return err
	}
	if err := unix.Lstat(dst, &ds); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("exchange %s and %s: %w", src, dst, err)
	}
	if ss.Mode&0o7777 == 0o755 && ss.Uid == 0 && ss.Gid == 0 {
		// Default root of a new snapshot: the layer had no "./" entry.
		unix.Lchown(dst, int(ds.Uid), int(ds.Gid))
		unix.Chmod(dst, ds.Mode&0o7777)
	}
	return nil
}

// commitLayer commits the active snapshot key as chain; a chain another
// process committed first is success, and key is removed.
func (s *Service) commitLayer(key string, chain, diffID digest.Digest) error {
	err := s.sn.Commit(chain.String(), key, map[string]string{LabelDiffID: diffID.String()})
	if errors.Is(err, snapshot.ErrExists) {
		s.sn.Remove(key)
		return nil
	}
	if err != nil {
		s.sn.Remove(key)
		return fmt.Errorf("commit snapshot %s: %w", chain, err)
	}
	return nil
}

// applyBlob extracts the layer blob desc into the active snapshot key.
func (s *Service) applyBlob(ctx context.Context, key string, desc ocispec.Descriptor, diffID digest.Digest, cfg unpackConfig) error {
	ra, err := s.content.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	r := &progressReader{r: io.NewSectionReader(ra, 0, ra.Size()), ctx: ctx, id: shortDigest(desc.Digest), total: ra.Size(), rep: cfg.progress}
	if err := s.applyStream(key, desc, diffID, r); err != nil {
		return err
	}
	cfg.progress.Update(r.id, "Extracted", ra.Size(), ra.Size())
	return nil
}

// applyStream decompresses r, applies it into key's directory and checks
// the diff ID; r is read to its end.
func (s *Service) applyStream(key string, desc ocispec.Descriptor, diffID digest.Digest, r io.Reader) error {
	dir, overlay, err := s.sn.ApplyDir(key)
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if desc.MediaType != "" && !IsLayerMediaType(desc.MediaType) {
		return fmt.Errorf("%w: layer %s: unsupported media type %q", ErrInvalid, desc.Digest, desc.MediaType)
	}
	plain, closeFn, err := Decompress(r)
	if err != nil {
		return fmt.Errorf("%w: layer %s: %v", ErrInvalid, desc.Digest, err)
	}
	defer closeFn()
	h := digest.SHA256.Digester()
	tee := io.TeeReader(plain, h.Hash())
	opts := s.opts.Apply
	opts.Whiteouts = archive.WhiteoutDelete
	if overlay {
		opts.Whiteouts = archive.WhiteoutOverlay
	}
	if _, err := archive.Apply(dir, tee, opts); err != nil {
		return fmt.Errorf("%w: layer %s: %v", ErrInvalid, desc.Digest, err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("%w: layer %s: %v", ErrInvalid, desc.Digest, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if got := h.Digest(); diffID != "" && got != diffID {
		return fmt.Errorf("%w: layer %s: uncompressed content has digest %s, the config's diff_id is %s", ErrInvalid, desc.Digest, got, diffID)
	}
	return nil
}

// Decompress returns the tar inside r, which may be gzip-, zstd- or
// bzip2-compressed or plain (told by its first bytes).
func Decompress(r io.Reader) (io.Reader, func(), error) {
	plain, closeFn, _, err := decompress(r)
	return plain, closeFn, err
}

// decompress is Decompress, also telling whether r was not compressed.
func decompress(r io.Reader) (io.Reader, func(), bool, error) {
	plain, closeFn, err := decompressOf(r)
	if err != nil {
		return nil, nil, false, err
	}
	_, isPlain := plain.(*bufio.Reader)
	return plain, closeFn, isPlain, nil
}

func decompressOf(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %v", err)
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %v", err)
		}
		return zr, zr.Close, nil
	case len(magic) >= 3 && string(magic[:3]) == "BZh":
		return bzip2.NewReader(br), func() {}, nil
	case len(magic) >= 4 && magic[0] == 0xfd && string(magic[1:4]) == "7zX":
		return nil, nil, errors.New("xz compression is not supported (use gzip or zstd)")
	}
	return br, func() {}, nil
}

type progressReader struct {
	r        io.Reader
	ctx      context.Context
	id       string
	n, total int64
	last     int64
	rep      progress.Reporter
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.last >= 512<<10 || (err == io.EOF && p.n != p.last) {
		p.last = p.n
		p.rep.Update(p.id, "Extracting", p.n, p.total)
	}
	return n, err
}

// UnpackLayer unpacks one layer read from r (its blob, compressed as
// desc.MediaType says, streamed as it downloads) on top of the committed
// snapshot parentChainID ("" for the bottom layer) and returns its chain
// ID. r is read to its end. With an overlay-style snapshotter the parent
// need not be committed yet: the layer is extracted at once and placed on
// its parent when that appears (until ctx ends), so a pull can unpack all
// its layers in parallel; otherwise it waits for the parent first.
func (s *Service) UnpackLayer(ctx context.Context, desc ocispec.Descriptor, diffID digest.Digest, parentChainID string, r io.Reader, opts ...UnpackOption) (string, error) {
	if s.sn == nil {
		return "", errors.New("unpack: the image store has no snapshotter")
	}
	if err := diffID.Validate(); err != nil {
		return "", fmt.Errorf("%w: layer %s: diff ID %q: %v", ErrInvalid, desc.Digest, diffID, err)
	}
	cfg := unpackOptions(opts)
	chain := diffID
	if parentChainID != "" {
		chain = digest.FromString(parentChainID + " " + diffID.String())
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	pr := &progressReader{r: r, ctx: ctx, id: shortDigest(desc.Digest), total: desc.Size, rep: cfg.progress}
	if s.committed(chain.String()) {
		_, err := io.Copy(io.Discard, pr)
		return chain.String(), err
	}
	labels := map[string]string{LabelDiffID: diffID.String()}
	parentReady := parentChainID == "" || s.committed(parentChainID)
	prepParent := parentChainID
	if !parentReady {
		prepParent = ""
	}
	tmp := tempKey(chain)
	if _, err := s.sn.Prepare(tmp, prepParent, labels); err != nil {
		return "", fmt.Errorf("layer %s: prepare snapshot: %w", desc.Digest, err)
	}
	if _, overlay, err := s.sn.ApplyDir(tmp); err != nil {
		s.sn.Remove(tmp)
		return "", fmt.Errorf("layer %s: %w", desc.Digest, err)
	} else if !parentReady && !overlay {
		// A merged-tree snapshotter needs the parent's files first.
		s.sn.Remove(tmp)
		if err := s.waitCommitted(ctx, parentChainID); err != nil {
			return "", fmt.Errorf("layer %s: wait for parent layer %s: %w", desc.Digest, parentChainID, err)
		}
		parentReady = true
		if _, err := s.sn.Prepare(tmp, parentChainID, labels); err != nil {
			return "", fmt.Errorf("layer %s: prepare snapshot: %w", desc.Digest, err)
		}
	}
	if err := s.applyStream(tmp, desc, diffID, pr); err != nil {
		s.sn.Remove(tmp)
		return "", err
	}
	if parentReady {
		if err := s.commitLayer(tmp, chain, diffID); err != nil {
			return "", fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
	} else {
		if err := s.waitCommitted(ctx, parentChainID); err != nil {
			s.sn.Remove(tmp)
			return "", fmt.Errorf("layer %s: wait for parent layer %s: %w", desc.Digest, parentChainID, err)
		}
		// The blob is not in hand to extract again: exchange must work.
		if err := s.moveStreamed(tmp, chain, parentChainID, diffID); err != nil {
			return "", fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
	}
	cfg.progress.Update(pr.id, "Extracted", pr.n, pr.n)
	if err := s.recordSizes(ctx, []digest.Digest{chain}); err != nil {
		return "", err
	}
	return chain.String(), nil
}

func (s *Service) moveStreamed(tmp string, chain digest.Digest, parent string, diffID digest.Digest) error {
	defer s.sn.Remove(tmp)
	if s.committed(chain.String()) {
		return nil
	}
	fin := tempKey(chain)
	if _, err := s.sn.Prepare(fin, parent, map[string]string{LabelDiffID: diffID.String()}); err != nil {
		return fmt.Errorf("prepare snapshot: %w", err)
	}
	src, _, err := s.sn.ApplyDir(tmp)
	if err == nil {
		var dst string
		if dst, _, err = s.sn.ApplyDir(fin); err == nil {
			err = exchangeDirs(src, dst)
		}
	}
	if err != nil {
		s.sn.Remove(fin)
		return err
	}
	return s.commitLayer(fin, chain, diffID)
}

func (s *Service) waitCommitted(ctx context.Context, key string) error {
	for delay := 5 * time.Millisecond; !s.committed(key); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
	return nil
}

// recordSizes stores the unpacked size of each chain that has none.
func (s *Service) recordSizes(ctx context.Context, chain []digest.Digest) error {
	var missing []digest.Digest
	if err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketLayers))
		for _, c := range chain {
			if b == nil || b.Get([]byte(c.String())) == nil {
				missing = append(missing, c)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	type sized struct {
		key string
		rec layerRecord
	}
	var recs []sized
	for _, c := range missing {
		info, err := s.sn.Stat(c.String())
		if err != nil {
			continue
		}
		u, err := s.sn.Usage(c.String())
		if err != nil {
			continue
		}
		recs = append(recs, sized{c.String(), layerRecord{DiffID: digest.Digest(info.Labels[LabelDiffID]), Size: u.Size}})
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketLayers))
		for _, r := range recs {
			v, _ := json.Marshal(r.rec)
			if err := b.Put([]byte(r.key), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func isUnpackKey(k string) bool { return strings.HasPrefix(k, unpackPrefix) }

// sweepUnpacks removes the temporary snapshots of killed unpacks when no
// other process holds a lease (so none of them is live).
func (s *Service) sweepUnpacks(ctx context.Context) {
	lock, err := lockExclusive(ctx, s.gcLock, s.opts.LockTimeout, false)
	if err != nil || lock == nil {
		return
	}
	defer lock.Close()
	var stale []string
	s.sn.Walk(func(i snapshot.Info) error {
		if isUnpackKey(i.Key) {
			stale = append(stale, i.Key)
		}
		return nil
	})
	for _, k := range stale {
		s.sn.Remove(k)
	}
}
