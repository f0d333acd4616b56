package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/internal/progress"
)

// PushOptions tune Push.
type PushOptions struct {
	// Insecure, Keychain, Auth and Transport are as in PullOptions.
	Insecure  bool
	Keychain  authn.Keychain
	Auth      authn.Authenticator
	Transport http.RoundTripper
	// Progress receives per-blob progress (id = 12 hex digits of the
	// digest): "Preparing", "Waiting", "Pushing", "Pushed", "Layer already
	// exists", "Mounted from <repo>".
	Progress progress.Reporter
	// Concurrency is the number of blobs uploaded at once
	// (DefaultConcurrency when 0).
	Concurrency int
	// ChunkSize > 0 uploads blobs in PATCH requests of that many bytes;
	// 0 uploads each blob in one PUT (monolithic).
	ChunkSize int64
	// SourceDB, when set, is read to mount blobs from other repositories of
	// the same registry, and records the pushed blobs.
	SourceDB SourceDB
}

// Push uploads the image whose manifest (or multi-platform index) is
// manifest, all of whose blobs must be in cs, to ref: the blobs the
// registry lacks, then the manifest(s), tagged with ref's tag (or stored
// under ref's digest).
func Push(ctx context.Context, ref name.Reference, cs content.Store, manifest ocispec.Descriptor, opts PushOptions) error {
	if err := push(ctx, ref, cs, manifest, opts); err != nil {
		return fmt.Errorf("push %s: %w", ref.String(), err)
	}
	return nil
}

type storedManifest struct {
	desc ocispec.Descriptor
	body []byte
}

func push(ctx context.Context, ref name.Reference, cs content.Store, top ocispec.Descriptor, opts PushOptions) error {
	if d, ok := ref.(name.Digest); ok && digest.Digest(d.DigestStr()) != top.Digest {
		return fmt.Errorf("reference digest %s is not the manifest's digest %s", d.DigestStr(), top.Digest)
	}
	// Read what is to be pushed: manifests (children before the index) and
	// the blobs they name.
	var manifests []storedManifest
	var blobs []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	var load func(desc ocispec.Descriptor, depth int) error
	load = func(desc ocispec.Descriptor, depth int) error {
		if desc.Size > maxManifestSize {
			return fmt.Errorf("manifest %s: size %d exceeds %d bytes", desc.Digest, desc.Size, maxManifestSize)
		}
		body, err := content.ReadBlob(ctx, cs, desc)
		if err != nil {
			return fmt.Errorf("read manifest %s: %w", desc.Digest, err)
		}
		doc, mt, err := parseManifest(body, desc.MediaType)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		desc.MediaType = mt
		if isIndex(mt) {
			if depth > 0 {
				return fmt.Errorf("index %s: nested indexes are not supported", desc.Digest)
			}
			for _, c := range doc.Manifests {
				if err := load(c, depth+1); err != nil {
					return err
				}
			}
		} else {
			for _, b := range append([]ocispec.Descriptor{*doc.Config}, doc.Layers...) {
				if !seen[b.Digest] {
					seen[b.Digest] = true
					blobs = append(blobs, b)
				}
			}
		}
		manifests = append(manifests, storedManifest{desc, body})
		return nil
	}
	if err := load(top, 0); err != nil {
		return err
	}
	for _, b := range blobs {
		info, err := cs.Info(ctx, b.Digest)
		if err != nil {
			return fmt.Errorf("blob %s: %w", b.Digest, err)
		}
		if info.Size != b.Size {
			return fmt.Errorf("blob %s: manifest says %d bytes, the stored blob has %d", b.Digest, b.Size, info.Size)
		}
	}

	repo := ref.Context()
	reg := registryFor(repo.Registry, opts.Insecure)
	// Mount candidates: other repositories of this registry holding a blob.
	ds := make([]digest.Digest, len(blobs))
	for i, b := range blobs {
		ds[i] = b.Digest
	}
	srcs, _ := opts.SourceDB.lookupAll(ds) // best effort: without records every blob is uploaded
	mountFrom := map[digest.Digest]string{}
	scopes := []string{repo.Scope(transport.PushScope)}
	fromRepos := map[string]bool{}
	for d, list := range srcs {
		for _, s := range list {
			host, r, ok := strings.Cut(s, "/")
			if !ok || host != reg.RegistryStr() || r == repo.RepositoryStr() {
				continue
			}
			mountFrom[d] = r
			if !fromRepos[r] && len(fromRepos) < 8 {
				fromRepos[r] = true
				if from, err := name.NewRepository(reg.RegistryStr() + "/" + r); err == nil {
					scopes = append(scopes, from.Scope(transport.PullScope))
				}
			}
			break
		}
	}
	rm := remote{insecure: opts.Insecure, keychain: opts.Keychain, auth: opts.Auth, transport: opts.Transport}
	c, err := rm.newRepoClient(ctx, repo, scopes)
	if err != nil {
		return err
	}
	prog := progress.Or(opts.Progress)
	u := &uploader{c: c, cs: cs, prog: prog, chunk: opts.ChunkSize}

	for _, b := range blobs {
		prog.Update(shortID(b.Digest), "Preparing", 0, b.Size)
	}
	if err := u.blobs(ctx, blobs, mountFrom, opts.Concurrency); err != nil {
		return err
	}
	for i, m := range manifests {
		tag := m.desc.Digest.String()
		if i == len(manifests)-1 {
			tag = ref.Identifier()
		}
		if err := c.putManifest(ctx, tag, m); err != nil {
			return err
		}
	}
	_ = opts.SourceDB.Record(c.reg.RegistryStr(), c.repo.RepositoryStr(), ds) // best effort
	return nil
}

type uploader struct {
	c     *repoClient
	cs    content.Store
	prog  progress.Reporter
	chunk int64
}

func (u *uploader) blobs(ctx context.Context, blobs []ocispec.Descriptor, mountFrom map[digest.Digest]string, n int) error {
	for _, b := range blobs {
		u.prog.Update(shortID(b.Digest), "Waiting", 0, b.Size)
	}
	return forEachParallel(ctx, blobs, n, func(ctx context.Context, b ocispec.Descriptor) error {
		return u.blob(ctx, b, mountFrom[b.Digest])
	})
}

// blob makes sure the registry has one blob: present, mounted or uploaded.
func (u *uploader) blob(ctx context.Context, desc ocispec.Descriptor, from string) error {
	id := shortID(desc.Digest)
	c := u.c
	resp, err := c.do(ctx, http.MethodHead, c.url("blobs/"+desc.Digest.String(), nil), nil, nil, 0, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return fmt.Errorf("check blob %s: %w", desc.Digest, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		u.prog.Update(id, "Layer already exists", desc.Size, desc.Size)
		return nil
	}

	q := url.Values{}
	if from != "" {
		q.Set("mount", desc.Digest.String())
		q.Set("from", from)
	}
	resp, err = c.do(ctx, http.MethodPost, c.url("blobs/uploads/", q), nil, bytes.NewReader(nil), 0, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("start upload of blob %s: %w", desc.Digest, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		u.prog.Update(id, "Mounted from "+from, desc.Size, desc.Size)
		return nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return fmt.Errorf("start upload of blob %s: registry sent no Location", desc.Digest)
	}
	if loc, err = resolveURL(resp, loc); err != nil {
		return err
	}

	ra, err := u.cs.ReaderAt(ctx, desc)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	pr := &progressReader{prog: u.prog, id: id, total: desc.Size}
	if u.chunk > 0 {
		for off := int64(0); off < desc.Size; {
			n := min(u.chunk, desc.Size-off)
			pr.r = io.NewSectionReader(ra, off, n)
			hdr := http.Header{
				"Content-Type":  {"application/octet-stream"},
				"Content-Range": {strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)},
			}
			resp, err := c.do(ctx, http.MethodPatch, loc, hdr, pr, n, http.StatusAccepted, http.StatusNoContent, http.StatusCreated)
			if err != nil {
				return fmt.Errorf("upload blob %s (bytes %d-%d): %w", desc.Digest, off, off+n-1, err)
			}
			resp.Body.Close()
			if l := resp.Header.Get("Location"); l != "" {
				if loc, err = resolveURL(resp, l); err != nil {
					return err
				}
			}
			off += n
		}
		pr.r, pr.done = bytes.NewReader(nil), desc.Size
	} else {
		pr.r = io.NewSectionReader(ra, 0, desc.Size)
	}
	put, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("upload location %q: %w", loc, err)
	}
	pq := put.Query()
	pq.Set("digest", desc.Digest.String())
	put.RawQuery = pq.Encode()
	size := desc.Size
	if u.chunk > 0 {
		size = 0
	}
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	resp, err = c.do(ctx, http.MethodPut, put.String(), hdr, pr, size, http.StatusCreated, http.StatusAccepted, http.StatusNoContent)
	if err != nil {
		return fmt.Errorf("upload blob %s: %w", desc.Digest, err)
	}
	resp.Body.Close()
	u.prog.Update(id, "Pushed", desc.Size, desc.Size)
	return nil
}

// putManifest uploads a manifest under a tag or its digest.
func (c *repoClient) putManifest(ctx context.Context, tag string, m storedManifest) error {
	hdr := http.Header{"Content-Type": {m.desc.MediaType}}
	resp, err := c.do(ctx, http.MethodPut, c.url("manifests/"+tag, nil), hdr, bytes.NewReader(m.body), int64(len(m.body)), http.StatusCreated, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return fmt.Errorf("put manifest %s as %s: %w", m.desc.Digest, tag, err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != m.desc.Digest.String() {
		return fmt.Errorf("put manifest %s as %s: registry stored it as %s", m.desc.Digest, tag, got)
	}
	return nil
}

// progressReader reports bytes read as "Pushing".
type progressReader struct {
	r     io.Reader
	prog  progress.Reporter
	id    string
	done  int64
	total int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		p.prog.Update(p.id, "Pushing", p.done, p.total)
	}
	return n, err
}
