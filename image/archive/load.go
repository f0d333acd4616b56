package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/internal/progress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Loaded is an image found in an archive: its manifest (committed to the
// store with everything it references, all verified) and its names in
// normalised form (docker.io/library/busybox:latest).
type Loaded struct {
	Names    []string
	Manifest ocispec.Descriptor
}

// smallEntry is the size up to which an entry of unknown digest is read
// into memory and hashed before it is stored (configs), rather than go
// through the store's ingest.
const smallEntry = 4 << 20

// manifestItem is one image in a docker-archive's manifest.json.
type manifestItem struct {
	Config       string
	RepoTags     []string
	Layers       []string
	Parent       string                               `json:",omitempty"`
	LayerSources map[digest.Digest]ocispec.Descriptor `json:",omitempty"`
}

// loader holds what one pass over an archive found.
type loader struct {
	ctx   context.Context
	cs    content.Store
	pr    progress.Reporter
	files map[string]ocispec.Descriptor // regular file entries stored as blobs, by path
	links map[string]string             // symlinks and hard links: path -> target path
	meta  map[string][]byte             // manifest.json, index.json, oci-layout, repositories
	buf   []byte                        // copy buffer
	small []byte                        // small entries of unknown digest
	hook  func(ocispec.Descriptor, io.Reader) error
	hooks sync.WaitGroup
}

var metaFiles = map[string]bool{"manifest.json": true, "index.json": true, "oci-layout": true, "repositories": true}

// Load reads an image archive from r — a docker-archive (what `docker save`
// writes, old or Docker ≥25 layout) or an OCI image-layout archive, plain or
// compressed with gzip, zstd or bzip2 — and writes its blobs into cs as they
// pass. It returns the images found, each verified: every blob's digest, and
// each layer against the config's diff_ids. For a docker-archive it makes a
// Docker schema2 manifest (an OCI one when a layer is zstd-compressed) from
// manifest.json and stores it. It registers no names: the caller does, from
// what Load returns. pr may be nil.
func Load(ctx context.Context, r io.Reader, cs content.Store, pr progress.Reporter) ([]Loaded, error) {
	return LoadWith(ctx, r, cs, LoadOptions{Progress: pr})
}

// LoadWith is Load with options (a hook that receives the layers as they
// pass).
func LoadWith(ctx context.Context, r io.Reader, cs content.Store, opts LoadOptions) ([]Loaded, error) {
	src, c, err := autoDecompress(&ctxReader{ctx: ctx, r: r})
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer src.Close()
	l := &loader{
		ctx:   ctx,
		cs:    cs,
		pr:    progress.Or(opts.Progress),
		files: map[string]ocispec.Descriptor{},
		links: map[string]string{},
		meta:  map[string][]byte{},
		buf:   make([]byte, 1<<20),
		hook:  opts.BlobHook,
	}
	defer l.hooks.Wait()
	tr := tar.NewReader(src)
	n := 0
	for ; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if n == 0 {
				return nil, fmt.Errorf("read archive: not a tar archive (%s): %w", c, err)
			}
			return nil, fmt.Errorf("read archive after entry %d: %w", n, err)
		}
		if err := l.entry(hdr, tr); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("archive entry %q: %w", hdr.Name, err)
		}
	}
	// Read what follows the tar's end so that a compressed stream's
	// checksum is verified.
	if _, err := io.CopyBuffer(io.Discard, src, l.buf); err != nil {
		return nil, fmt.Errorf("read archive end (%s): %w", c, err)
	}

	_, hasIndex := l.meta["index.json"]
	_, hasManifest := l.meta["manifest.json"]
	switch {
	case hasIndex:
		loaded, err := l.loadOCI()
		if err != nil && hasManifest {
			// A docker-archive whose index.json is not usable (blobs of
			// other platforms missing, say): manifest.json is what Docker
			// itself reads.
			if loaded, derr := l.loadDocker(); derr == nil {
				return loaded, nil
			}
		}
		return loaded, err
	case hasManifest:
		return l.loadDocker()
	}
	if n == 0 {
		return nil, errors.New("read archive: empty tar archive")
	}
	return nil, errors.New("not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)")
}

// cleanPath makes an archive path canonical: no leading ./ or /.
func cleanPath(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

func (l *loader) entry(hdr *tar.Header, tr *tar.Reader) error {
	name := cleanPath(hdr.Name)
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeXGlobalHeader:
		return nil
	case tar.TypeSymlink:
		target := hdr.Linkname
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(name), target)
		}
		l.links[name] = cleanPath(target)
		delete(l.files, name)
		return nil
	case tar.TypeLink:
		l.links[name] = cleanPath(hdr.Linkname)
		delete(l.files, name)
		return nil
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tar writers
	default:
		return nil // devices, fifos: nothing an image archive needs
	}
	delete(l.links, name)
	if hdr.Size < 0 {
		return fmt.Errorf("negative size %d", hdr.Size)
	}
	if metaFiles[name] {
		if hdr.Size > maxJSON {
			return fmt.Errorf("%d bytes, more than the %d allowed", hdr.Size, maxJSON)
		}
		p, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		l.meta[name] = p
		return nil
	}
	dir, base := path.Split(name)
	if dir != "" && (base == "VERSION" || base == "json") && !strings.HasPrefix(name, "blobs/") {
		return nil // v1 metadata of the old layout; Docker ignores it too
	}
	desc, err := l.store(name, hdr.Size, tr)
	if err != nil {
		return err
	}
	l.files[name] = desc
	return nil
}

// blobDigest returns the digest a path blobs/<alg>/<hex> names, if it does.
func blobDigest(name string) (digest.Digest, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "blobs" {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[2])
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// store writes one file entry into the store and returns its descriptor;
// a large one also goes to the hook as it passes.
func (l *loader) store(name string, size int64, r io.Reader) (desc ocispec.Descriptor, err error) {
	if l.hook != nil && size >= HookMinSize {
		hd := ocispec.Descriptor{Size: size}
		if d, ok := blobDigest(name); ok {
			hd.Digest = d
		}
		tee := &hookTee{r: r, p: l.startHook(hd)}
		r = tee
		defer func() {
			if err == nil && !tee.dead && tee.n == size {
				tee.p.CloseWithError(nil)
			} else {
				tee.p.CloseWithError(errNotStored)
			}
		}()
	}
	return l.storeEntry(name, size, r)
}

func (l *loader) storeEntry(name string, size int64, r io.Reader) (ocispec.Descriptor, error) {
	// Progress names a blob by its digest, a layer.tar of the old layout by
	// its directory (the layer's v1 ID, as docker load shows it).
	id := path.Base(name)
	if d, ok := blobDigest(name); ok {
		id = d.Encoded()
	} else if dir, _, ok := strings.Cut(name, "/"); ok {
		id = dir
	}
	if len(id) > 12 {
		id = id[:12]
	}
	pr := &progressReader{r: r, pr: l.pr, id: id, total: size}
	if d, ok := blobDigest(name); ok {
		desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: size}
		if err := l.write(desc, pr); err != nil {
			return desc, err
		}
		l.pr.Update(id, "Loaded", size, size)
		return desc, nil
	}
	if size <= smallEntry {
		if int64(cap(l.small)) < size {
			l.small = make([]byte, size)
		}
		p := l.small[:size]
		if _, err := io.ReadFull(pr, p); err != nil {
			return ocispec.Descriptor{}, err
		}
		desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(p), Size: size}
		if err := l.write(desc, bytes.NewReader(p)); err != nil {
			return desc, err
		}
		l.pr.Update(id, "Loaded", size, size)
		return desc, nil
	}
	// Of unknown digest (a layer.tar): the store hashes it while writing.
	desc, err := content.Ingest(l.ctx, l.cs, pr, ocispec.MediaTypeImageLayer)
	if err != nil {
		return desc, err
	}
	if desc.Size != size {
		return desc, fmt.Errorf("stored %d bytes of %d", desc.Size, size)
	}
	l.pr.Update(id, "Loaded", size, size)
	return desc, nil
}

// write copies r into the store as desc; the store verifies the digest.
func (l *loader) write(desc ocispec.Descriptor, r io.Reader) error {
	w, err := l.cs.Writer(l.ctx, desc)
	if errors.Is(err, content.ErrExists) {
		return nil // the tar reader skips the rest of the entry
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if off := w.Offset(); off > 0 {
		if _, err := io.CopyN(io.Discard, r, off); err != nil {
			return err
		}
	}
	if _, err := io.CopyBuffer(writerOnly{w}, r, l.buf); err != nil {
		return err
	}
	return w.Commit()
}

// writerOnly hides a writer's ReadFrom so that io.CopyBuffer uses the
// given buffer (one big buffer: fewer, larger writes).
type writerOnly struct{ io.Writer }

type progressReader struct {
	r         io.Reader
	pr        progress.Reporter
	id        string
	n, total  int64
	lastShown int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.n-p.lastShown >= 4<<20 {
		p.lastShown = p.n
		p.pr.Update(p.id, "Loading", p.n, p.total)
	}
	return n, err
}

// resolve follows links from an archive path to a stored file entry.
func (l *loader) resolve(name string) (ocispec.Descriptor, error) {
	p := cleanPath(name)
	for i := 0; i < 16; i++ {
		if d, ok := l.files[p]; ok {
			return d, nil
		}
		t, ok := l.links[p]
		if !ok {
			return ocispec.Descriptor{}, fmt.Errorf("%q is not in the archive", name)
		}
		p = t
	}
	return ocispec.Descriptor{}, fmt.Errorf("%q: too many levels of links", name)
}

// loadOCI builds the result from index.json.
func (l *loader) loadOCI() ([]Loaded, error) {
	if p, ok := l.meta["oci-layout"]; ok {
		if err := checkLayoutFile(p); err != nil {
			return nil, err
		}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(l.meta["index.json"], &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("index.json: schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if len(idx.Manifests) == 0 {
		return nil, errors.New("index.json lists no images")
	}
	// Docker ≥25 puts tags in manifest.json too; an index entry without a
	// name annotation gets them through its config.
	tagsByConfig := map[digest.Digest][]string{}
	if p, ok := l.meta["manifest.json"]; ok {
		var items []manifestItem
		if json.Unmarshal(p, &items) == nil {
			for _, it := range items {
				if d, err := l.resolve(it.Config); err == nil {
					tagsByConfig[d.Digest] = append(tagsByConfig[d.Digest], it.RepoTags...)
				}
			}
		}
	}
	var out []Loaded
	pos := map[digest.Digest]int{}
	for i, desc := range idx.Manifests {
		img, err := resolveImage(l.ctx, l.cs, desc)
		if err != nil {
			return nil, fmt.Errorf("index.json: image %d: %w", i, err)
		}
		names, err := indexNames(desc.Annotations)
		if err != nil {
			return nil, fmt.Errorf("index.json: image %d: %w", i, err)
		}
		if names == nil {
			for _, t := range tagsByConfig[img.manifest.Config.Digest] {
				n, err := normalizeName(t)
				if err != nil {
					return nil, fmt.Errorf("manifest.json: repo tag: %w", err)
				}
				names = appendName(names, n)
			}
		}
		md := ocispec.Descriptor{MediaType: img.desc.MediaType, Digest: img.desc.Digest, Size: img.desc.Size, Platform: img.desc.Platform}
		if j, ok := pos[md.Digest]; ok {
			for _, n := range names {
				out[j].Names = appendName(out[j].Names, n)
			}
			continue
		}
		pos[md.Digest] = len(out)
		out = append(out, Loaded{Names: names, Manifest: md})
	}
	return out, nil
}

// indexNames returns the normalised name an index.json entry carries: the
// full name containerd and Docker put in io.containerd.image.name, else
// org.opencontainers.image.ref.name taken as an image name (a bare tag there
// names no repository and is ignored).
func indexNames(ann map[string]string) ([]string, error) {
	if n := ann[annotationImageName]; n != "" {
		full, err := normalizeName(n)
		if err != nil {
			return nil, err
		}
		return []string{full}, nil
	}
	n := ann[ocispec.AnnotationRefName]
	if n == "" {
		return nil, nil
	}
	if !strings.ContainsAny(n, ":/@") {
		return nil, nil // "latest": a tag without a repository
	}
	full, err := normalizeName(n)
	if err != nil {
		return nil, err
	}
	return []string{full}, nil
}

func checkLayoutFile(p []byte) error {
	var lay ocispec.ImageLayout
	if err := json.Unmarshal(p, &lay); err != nil {
		return fmt.Errorf("oci-layout: %w", err)
	}
	if lay.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("oci-layout: imageLayoutVersion %q, want %q", lay.Version, ocispec.ImageLayoutVersion)
	}
	return nil
}

// loadDocker builds a manifest for each image of manifest.json.
func (l *loader) loadDocker() ([]Loaded, error) {
	var items []manifestItem
	if err := json.Unmarshal(l.meta["manifest.json"], &items); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	if len(items) == 0 {
		return nil, errors.New("manifest.json lists no images")
	}
	type verify struct {
		desc   ocispec.Descriptor
		c      compression
		diffID digest.Digest
		where  string
	}
	var checks []verify
	checked := map[digest.Digest]bool{}
	var out []Loaded
	var manifests [][]byte // out[i]'s manifest, stored once everything checks out
	pos := map[digest.Digest]int{}
	for i, it := range items {
		where := fmt.Sprintf("manifest.json: image %d", i)
		cfgDesc, err := l.resolve(it.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", where, err)
		}
		cfgDesc.MediaType = mediaTypeDockerConfig
		// The old layout names the config <sha256 hex>.json: its digest.
		if base := path.Base(cleanPath(it.Config)); len(base) == 64+len(".json") && strings.HasSuffix(base, ".json") {
			if named := digest.NewDigestFromEncoded(digest.SHA256, strings.TrimSuffix(base, ".json")); named.Validate() == nil && named != cfgDesc.Digest {
				return nil, fmt.Errorf("%s: config %s: content digest is %s", where, it.Config, cfgDesc.Digest)
			}
		}
		var cfg ocispec.Image
		if err := readJSON(l.ctx, l.cs, cfgDesc, &cfg); err != nil {
			return nil, fmt.Errorf("%s: config %s: %w", where, it.Config, err)
		}
		diffIDs := cfg.RootFS.DiffIDs
		if len(it.Layers) != len(diffIDs) {
			return nil, fmt.Errorf("%s: %d layers but config %s lists %d diff_ids", where, len(it.Layers), it.Config, len(diffIDs))
		}
		m := ocispec.Manifest{MediaType: mediaTypeDockerManifest, Config: cfgDesc}
		m.SchemaVersion = 2
		zstdUsed := false
		for j, lp := range it.Layers {
			ld, err := l.resolve(lp)
			if err != nil {
				return nil, fmt.Errorf("%s: layer %d: %w", where, j, err)
			}
			if err := diffIDs[j].Validate(); err != nil {
				return nil, fmt.Errorf("%s: config %s: diff_id %d %q: %w", where, it.Config, j, diffIDs[j], err)
			}
			c, err := sniffCompression(l.ctx, l.cs, ld)
			if err != nil {
				return nil, fmt.Errorf("%s: layer %s: %w", where, lp, err)
			}
			switch c {
			case uncompressed:
				ld.MediaType = mediaTypeDockerLayer
				if ld.Digest != diffIDs[j] {
					return nil, fmt.Errorf("%s: layer %s has digest %s but the config's diff_id %d is %s", where, lp, ld.Digest, j, diffIDs[j])
				}
			case compressGzip:
				ld.MediaType = mediaTypeDockerLayerGzip
			case compressZstd:
				ld.MediaType = mediaTypeOCILayerZstd
				zstdUsed = true
			default:
				return nil, fmt.Errorf("%s: layer %s: %s compression is not supported for layers", where, lp, c)
			}
			if c != uncompressed && !checked[ld.Digest] {
				checked[ld.Digest] = true
				checks = append(checks, verify{ld, c, diffIDs[j], fmt.Sprintf("%s: layer %s", where, lp)})
			}
			m.Layers = append(m.Layers, ld)
		}
		if zstdUsed {
			// Docker's schema2 has no zstd layers: say it the OCI way.
			m.MediaType = ocispec.MediaTypeImageManifest
			m.Config.MediaType = ocispec.MediaTypeImageConfig
			for k := range m.Layers {
				switch m.Layers[k].MediaType {
				case mediaTypeDockerLayer:
					m.Layers[k].MediaType = ocispec.MediaTypeImageLayer
				case mediaTypeDockerLayerGzip:
					m.Layers[k].MediaType = ocispec.MediaTypeImageLayerGzip
				}
			}
		}
		var names []string
		for _, t := range it.RepoTags {
			n, err := normalizeName(t)
			if err != nil {
				return nil, fmt.Errorf("%s: repo tag: %w", where, err)
			}
			names = appendName(names, n)
		}
		p, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		md := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(p), Size: int64(len(p))}
		if j, ok := pos[md.Digest]; ok {
			for _, n := range names {
				out[j].Names = appendName(out[j].Names, n)
			}
			continue
		}
		pos[md.Digest] = len(out)
		out = append(out, Loaded{Names: names, Manifest: md})
		manifests = append(manifests, p)
	}
	// Compressed layers: hash what they decompress to, several at once.
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, v := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			l.pr.Update(shortID(v.desc.Digest), "Verifying", 0, v.desc.Size)
			got, _, err := diffID(l.ctx, l.cs, v.desc, v.c)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", v.where, err)
			} else if got != v.diffID {
				errs[i] = fmt.Errorf("%s: decompresses to %s but the config's diff_id is %s", v.where, got, v.diffID)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, p := range manifests {
		if _, err := putBytes(l.ctx, l.cs, out[i].Manifest.MediaType, p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}
