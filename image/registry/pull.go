package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/internal/progress"
)

// DefaultConcurrency is the number of blobs transferred at once.
const DefaultConcurrency = 4

// PullOptions tune Pull. The zero value pulls for this machine's platform
// with Docker's credentials.
type PullOptions struct {
	// Platform selects the image of a multi-platform index; zero means
	// HostPlatform().
	Platform ocispec.Platform
	// Insecure allows plain http and unverified TLS for this registry.
	// Registries on localhost, 127.0.0.0/8 and ::1 always get the http
	// fallback.
	Insecure bool
	// Keychain gives credentials; nil means authn.DefaultKeychain (Docker's
	// config.json with credHelpers and credsStore, honouring $DOCKER_CONFIG).
	Keychain authn.Keychain
	// Auth, when set, is used instead of Keychain.
	Auth authn.Authenticator
	// Progress receives per-blob progress (id = 12 hex digits of the
	// digest): "Waiting", "Downloading", "Verifying Checksum", "Download
	// complete", "Already exists".
	Progress progress.Reporter
	// LayerHook, when set, receives each layer's compressed bytes from byte
	// 0 while they download, so the caller can unpack during the pull. A
	// layer already in the store, or resumed from an earlier pull, is given
	// to the hook as a reader of the stored blob. The hook must read r to
	// its end or return an error (which fails the pull). Its reader returns
	// the verification error instead of io.EOF when the blob's digest or
	// size is wrong, and what it did is valid only if Pull returns nil.
	// Hooks of different layers run concurrently; layers start in manifest
	// order, so a hook may wait for the previous layer's hook.
	LayerHook func(desc ocispec.Descriptor, r io.Reader) error
	// Concurrency is the number of layers downloaded at once
	// (DefaultConcurrency when 0).
	Concurrency int
	// SourceDB, when set, records where the pulled blobs came from, for
	// cross-repository mounts by a later Push.
	SourceDB SourceDB
	// Transport is the HTTP transport under authentication (tests, proxies);
	// nil means a default one.
	Transport http.RoundTripper
}

// PullResult says what Pull stored.
type PullResult struct {
	// Digest is the digest of what the reference named: the index of a
	// multi-platform image, else the manifest. It is the digest Docker
	// shows ("Digest: ...") and records in RepoDigests.
	Digest digest.Digest
	// Index is the top-level index, when the reference named one.
	Index *ocispec.Descriptor
	// Manifest is the image manifest for the platform (with Platform set
	// when it came from an index).
	Manifest ocispec.Descriptor
	// Config is the image config.
	Config ocispec.Descriptor
	// Layers are the layer blobs, base layer first.
	Layers []ocispec.Descriptor
}

// Pull downloads the image ref names (for opts.Platform when it is a
// multi-platform index) into cs and returns its descriptors. Blobs cs
// already has are not fetched; partial ingests left by an interrupted pull
// are resumed. The manifest, index and config are committed last, after
// every layer.
func Pull(ctx context.Context, ref name.Reference, cs content.Store, opts PullOptions) (*PullResult, error) {
	res, err := pull(ctx, ref, cs, opts)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref.String(), err)
	}
	return res, nil
}

type puller struct {
	c    *repoClient
	cs   content.Store
	opts PullOptions
	prog progress.Reporter
}

func pull(ctx context.Context, ref name.Reference, cs content.Store, opts PullOptions) (*PullResult, error) {
	want := opts.Platform
	if want.OS == "" && want.Architecture == "" {
		want = HostPlatform()
	}
	r := remote{insecure: opts.Insecure, keychain: opts.Keychain, auth: opts.Auth, transport: opts.Transport}
	c, err := r.newRepoClient(ctx, ref.Context(), []string{ref.Context().Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	p := &puller{c: c, cs: cs, opts: opts, prog: progress.Or(opts.Progress)}

	// The top-level manifest or index, by tag or digest.
	body, ctype, err := c.getManifest(ctx, ref.Identifier())
	if err != nil {
		return nil, err
	}
	top := ocispec.Descriptor{Digest: digest.FromBytes(body), Size: int64(len(body))}
	if d, ok := ref.(name.Digest); ok {
		wantDigest := digest.Digest(d.DigestStr())
		if err := wantDigest.Validate(); err != nil {
			return nil, fmt.Errorf("reference digest: %w", err)
		}
		got := wantDigest.Algorithm().FromBytes(body)
		if got != wantDigest {
			return nil, fmt.Errorf("registry sent a manifest with digest %s for %s", got, wantDigest)
		}
		top.Digest = wantDigest
	}
	doc, mt, err := parseManifest(body, ctype)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", top.Digest, err)
	}
	top.MediaType = mt

	res := &PullResult{Digest: top.Digest}
	// Small blobs committed after the layers: config, manifest, index.
	type pending struct {
		desc ocispec.Descriptor
		data []byte
	}
	var last []pending

	mdesc, mbody, mdoc := top, body, doc
	if isIndex(mt) {
		idx := top
		res.Index = &idx
		last = append(last, pending{top, body})
		child, err := selectPlatform(doc.Manifests, want)
		if err != nil {
			return nil, err
		}
		mdesc = child
		mbody, err = p.manifestByDigest(ctx, child)
		if err != nil {
			return nil, err
		}
		mdoc, mt, err = parseManifest(mbody, child.MediaType)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", child.Digest, err)
		}
		if !isManifest(mt) {
			return nil, fmt.Errorf("manifest %s for %s is a %s, not an image manifest", child.Digest, FormatPlatform(want), mt)
		}
		mdesc.MediaType = mt
	}
	last = append(last, pending{mdesc, mbody})
	res.Manifest = mdesc
	res.Config = *mdoc.Config
	res.Layers = mdoc.Layers

	// The config: small, read into memory, verified, committed last.
	if cfg, err := p.smallBlob(ctx, res.Config, maxConfigSize); err != nil {
		return nil, err
	} else if cfg != nil {
		last = append(last, pending{res.Config, cfg})
	}

	if err := p.layers(ctx, res.Layers); err != nil {
		return nil, err
	}

	// Config, then manifest, then index: the top-level blob appears last.
	slices.Reverse(last)
	for _, b := range last {
		if err := content.WriteBlob(ctx, cs, b.desc, bytes.NewReader(b.data)); err != nil {
			return nil, fmt.Errorf("store %s: %w", b.desc.Digest, err)
		}
	}

	blobs := []digest.Digest{res.Config.Digest}
	for _, l := range res.Layers {
		blobs = append(blobs, l.Digest)
	}
	// Best effort: a missing record only costs a later push an upload.
	_ = opts.SourceDB.Record(c.reg.RegistryStr(), c.repo.RepositoryStr(), blobs)
	return res, nil
}

// selectPlatform picks the best manifest of an index for want, or fails
// listing the platforms the index has.
func selectPlatform(list []ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, error) {
	best, bestRank := -1, 0
	var have []string
	for i, d := range list {
		if d.Platform == nil {
			continue
		}
		if d.Platform.OS == "unknown" { // attestations
			continue
		}
		have = append(have, FormatPlatform(*d.Platform))
		if r := platformRank(want, *d.Platform); r > bestRank {
			best, bestRank = i, r
		}
	}
	if best < 0 {
		if len(have) == 0 {
			return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s: the index lists no platforms", FormatPlatform(want))
		}
		return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s; available: %s", FormatPlatform(want), strings.Join(have, ", "))
	}
	return list[best], nil
}

// getManifest fetches a manifest or index by tag or digest.
func (c *repoClient) getManifest(ctx context.Context, ident string) ([]byte, string, error) {
	hdr := http.Header{"Accept": {acceptManifests}}
	resp, err := c.do(ctx, http.MethodGet, c.url("manifests/"+ident, nil), hdr, nil, 0, http.StatusOK)
	if err != nil {
		return nil, "", fmt.Errorf("get manifest %s: %w", ident, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("read manifest %s: %w", ident, err)
	}
	if len(body) > maxManifestSize {
		return nil, "", fmt.Errorf("manifest %s is larger than %d bytes", ident, maxManifestSize)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// manifestByDigest returns the manifest desc names, from the store when it
// has it, else from the registry, checked against desc.
func (p *puller) manifestByDigest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > maxManifestSize {
		return nil, fmt.Errorf("manifest %s: size %d exceeds %d bytes", desc.Digest, desc.Size, maxManifestSize)
	}
	if b, err := content.ReadBlob(ctx, p.cs, desc); err == nil && int64(len(b)) == desc.Size {
		return b, nil
	}
	body, _, err := p.c.getManifest(ctx, desc.Digest.String())
	if err != nil {
		return nil, err
	}
	if err := verifyBytes(desc, body); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return body, nil
}

// smallBlob fetches a small blob into memory and verifies it. It returns
// nil data when the store already has the blob.
func (p *puller) smallBlob(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if info, err := p.cs.Info(ctx, desc.Digest); err == nil {
		if info.Size != desc.Size {
			return nil, fmt.Errorf("blob %s: manifest says %d bytes, the stored blob has %d", desc.Digest, desc.Size, info.Size)
		}
		return nil, nil
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s: size %d exceeds %d bytes", desc.Digest, desc.Size, limit)
	}
	resp, err := p.c.do(ctx, http.MethodGet, p.c.url("blobs/"+desc.Digest.String(), nil), nil, nil, 0, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", desc.Digest, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	if err := verifyBytes(desc, body); err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return body, nil
}

func verifyBytes(desc ocispec.Descriptor, b []byte) error {
	if int64(len(b)) != desc.Size {
		if int64(len(b)) > desc.Size {
			return fmt.Errorf("registry sent more than the %d bytes the descriptor lists", desc.Size)
		}
		return fmt.Errorf("registry sent %d bytes, the descriptor lists %d", len(b), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return fmt.Errorf("digest mismatch: got %s", got)
	}
	return nil
}

// layers downloads the layers, Concurrency at a time, starting them in
// manifest order.
func (p *puller) layers(ctx context.Context, layers []ocispec.Descriptor) error {
	for _, l := range layers {
		p.prog.Update(shortID(l.Digest), "Waiting", 0, l.Size)
	}
	seen := map[digest.Digest]bool{}
	var unique []ocispec.Descriptor
	for _, l := range layers {
		if !seen[l.Digest] { // the same blob twice in one image
			seen[l.Digest] = true
			unique = append(unique, l)
		}
	}
	return forEachParallel(ctx, unique, p.opts.Concurrency, p.layer)
}

// layer makes sure one layer is in the store, and feeds it to the hook.
func (p *puller) layer(ctx context.Context, desc ocispec.Descriptor) error {
	id := shortID(desc.Digest)
	if info, err := p.cs.Info(ctx, desc.Digest); err == nil {
		return p.existing(ctx, desc, info, id)
	}
	w, err := p.cs.Writer(ctx, desc)
	if errors.Is(err, content.ErrExists) {
		info, err := p.cs.Info(ctx, desc.Digest)
		if err != nil {
			return fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		return p.existing(ctx, desc, info, id)
	}
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer w.Close()
	resumed := w.Offset() > 0
	var hook *hookPipe
	if p.opts.LayerHook != nil && !resumed {
		hook = startHook(ctx, p.opts.LayerHook, desc)
	}
	err = p.download(ctx, desc, w, hook, id)
	if hook != nil {
		if herr := hook.finish(err); herr != nil && err == nil {
			err = fmt.Errorf("layer %s: %w", desc.Digest, herr)
		}
	}
	if err != nil {
		return err
	}
	p.prog.Update(id, "Download complete", desc.Size, desc.Size)
	if p.opts.LayerHook != nil && resumed {
		return p.hookStored(ctx, desc)
	}
	return nil
}

// existing handles a layer the store already has.
func (p *puller) existing(ctx context.Context, desc ocispec.Descriptor, info content.Info, id string) error {
	if info.Size != desc.Size {
		return fmt.Errorf("layer %s: manifest says %d bytes, the stored blob has %d", desc.Digest, desc.Size, info.Size)
	}
	p.prog.Update(id, "Already exists", desc.Size, desc.Size)
	if p.opts.LayerHook != nil {
		return p.hookStored(ctx, desc)
	}
	return nil
}

// hookStored gives the hook a reader of the committed blob.
func (p *puller) hookStored(ctx context.Context, desc ocispec.Descriptor) error {
	ra, err := p.cs.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if err := p.opts.LayerHook(desc, io.NewSectionReader(ra, 0, ra.Size())); err != nil {
		return fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	return nil
}

// maxAttempts bounds the requests for one blob when connections break
// mid-transfer (each retry resumes with a Range request).
const maxAttempts = 4

// download writes the rest of desc into w (from w.Offset()), retrying
// broken transfers from where they stopped, then commits.
func (p *puller) download(ctx context.Context, desc ocispec.Descriptor, w content.Writer, hook *hookPipe, id string) error {
	buf := make([]byte, 256<<10)
	var lastErr error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		before := w.Offset()
		done, err := p.fetchRange(ctx, desc, w, hook, id, buf)
		if done {
			return err
		}
		lastErr = err
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if w.Offset() > before {
			attempt = 0 // progress was made: the connection broke, not the server
		}
	}
	return fmt.Errorf("layer %s: download failed after %d attempts (the partial blob is kept and resumed by the next pull): %w", desc.Digest, maxAttempts, lastErr)
}

// fetchRange makes one request for the rest of the blob. done reports that
// the outcome is final (committed, or an error a retry cannot fix).
func (p *puller) fetchRange(ctx context.Context, desc ocispec.Descriptor, w content.Writer, hook *hookPipe, id string, buf []byte) (done bool, err error) {
	off := w.Offset()
	if off == desc.Size {
		// An earlier pull wrote the whole blob and died before committing
		// it: nothing is left to fetch (a Range from the end gets 416).
		p.prog.Update(id, "Verifying Checksum", off, desc.Size)
		if err := w.Commit(); err != nil && !errors.Is(err, content.ErrExists) {
			return true, fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		return true, nil
	}
	hdr := http.Header{}
	if off > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := p.c.do(ctx, http.MethodGet, p.c.url("blobs/"+desc.Digest.String(), nil), hdr, nil, 0, http.StatusOK, http.StatusPartialContent)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.Temporary() {
			return false, fmt.Errorf("get blob %s: %w", desc.Digest, err)
		}
		if errors.As(err, &te) || ctx.Err() != nil {
			return true, fmt.Errorf("get blob %s: %w", desc.Digest, err)
		}
		return false, fmt.Errorf("get blob %s: %w", desc.Digest, err) // network
	}
	defer resp.Body.Close()
	body := io.Reader(resp.Body)
	remaining := desc.Size - off
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			return true, fmt.Errorf("blob %s: registry answered a request for bytes %d- with range %q", desc.Digest, off, resp.Header.Get("Content-Range"))
		}
	case http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
			return true, fmt.Errorf("blob %s: registry sends %d bytes, the manifest lists %d", desc.Digest, resp.ContentLength, desc.Size)
		}
		if off > 0 { // Range ignored: skip what the ingest has
			if _, err := io.CopyN(io.Discard, body, off); err != nil {
				return false, fmt.Errorf("blob %s: %w", desc.Digest, err)
			}
		}
	}
	if resp.StatusCode == http.StatusPartialContent && resp.ContentLength >= 0 && resp.ContentLength != remaining {
		return true, fmt.Errorf("blob %s: registry sends %d bytes from offset %d, the manifest lists %d in all", desc.Digest, resp.ContentLength, off, desc.Size)
	}

	cur := off
	p.prog.Update(id, "Downloading", cur, desc.Size)
	lr := io.LimitReader(body, remaining)
	for {
		n, rerr := lr.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return true, fmt.Errorf("blob %s: write to store: %w", desc.Digest, err)
			}
			if hook != nil {
				if err := hook.write(buf[:n]); err != nil {
					return true, fmt.Errorf("blob %s: %w", desc.Digest, err)
				}
			}
			cur += int64(n)
			p.prog.Update(id, "Downloading", cur, desc.Size)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return false, fmt.Errorf("blob %s: read: %w", desc.Digest, rerr)
		}
	}
	if cur < desc.Size {
		// A clean end before the size the manifest lists: the registry's
		// Content-Length said so. The partial ingest stays for a resume.
		return true, fmt.Errorf("blob %s: registry sent only %d of the %d bytes the manifest lists", desc.Digest, cur, desc.Size)
	}
	// A registry sending more than the manifest lists is lying.
	var extra string
	var one [1]byte
	if n, _ := io.ReadFull(body, one[:]); n > 0 {
		extra = fmt.Sprintf("registry sent more than the %d bytes the manifest lists; ", desc.Size)
	}
	p.prog.Update(id, "Verifying Checksum", cur, desc.Size)
	if err := w.Commit(); err != nil {
		if errors.Is(err, content.ErrExists) {
			return true, nil
		}
		if strings.Contains(err.Error(), desc.Digest.String()) {
			return true, fmt.Errorf("%s%w", extra, err)
		}
		return true, fmt.Errorf("blob %s: %s%w", desc.Digest, extra, err)
	}
	return true, nil
}

// contentRangeStart parses the first byte of "bytes start-end/total".
func contentRangeStart(s string) (int64, bool) {
	s, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, false
	}
	i := strings.IndexByte(s, '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	return n, err == nil
}

// hookPipe streams a downloading layer to the LayerHook.
type hookPipe struct {
	pw   *io.PipeWriter
	done chan error
	stop func() bool
}

func startHook(ctx context.Context, hook func(ocispec.Descriptor, io.Reader) error, desc ocispec.Descriptor) *hookPipe {
	pr, pw := io.Pipe()
	h := &hookPipe{pw: pw, done: make(chan error, 1)}
	// A hook that stops reading must not hold the download past cancellation.
	h.stop = context.AfterFunc(ctx, func() { pw.CloseWithError(context.Cause(ctx)) })
	go func() {
		err := hook(desc, pr)
		if err != nil {
			pr.CloseWithError(err)
		} else {
			_, _ = io.Copy(io.Discard, pr) // the rest (padding after the tar end)
		}
		h.done <- err
	}()
	return h
}

func (h *hookPipe) write(p []byte) error {
	if _, err := h.pw.Write(p); err != nil {
		return fmt.Errorf("layer hook: %w", err)
	}
	return nil
}

// finish ends the stream with the download's outcome (io.EOF when nil)
// and returns the hook's error.
func (h *hookPipe) finish(downloadErr error) error {
	h.stop()
	if downloadErr != nil {
		h.pw.CloseWithError(downloadErr)
	} else {
		h.pw.Close()
	}
	return <-h.done
}
