package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// SaveItem is an image to save: its manifest in the store (an index is
// resolved to this machine's platform) and the names to give it, any form
// (busybox:1.35, docker.io/library/busybox:1.35).
type SaveItem struct {
	Names    []string
	Manifest ocispec.Descriptor
}

// Format is the kind of archive Save writes.
type Format int

const (
	// FormatDocker is a docker-archive as Docker ≥25 writes it: uncompressed
	// layer tars named by their diff_ids under blobs/sha256, manifest.json
	// and repositories for every Docker version, index.json and oci-layout
	// for OCI readers (and Docker's containerd image store).
	FormatDocker Format = iota + 1
	// FormatOCI is an oci-archive: oci-layout, index.json whose entries
	// carry org.opencontainers.image.ref.name and io.containerd.image.name,
	// blobs kept as stored (compressed layers stay compressed). It also has
	// a manifest.json, so `docker load` of every version reads it.
	FormatOCI
)

func (f Format) String() string {
	switch f {
	case FormatDocker:
		return "docker-archive"
	case FormatOCI:
		return "oci-archive"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat reads a format name: docker-archive (or docker), oci-archive
// (or oci).
func ParseFormat(s string) (Format, error) {
	switch s {
	case "docker-archive", "docker":
		return FormatDocker, nil
	case "oci-archive", "oci":
		return FormatOCI, nil
	}
	return 0, fmt.Errorf("unknown archive format %q (want docker-archive or oci-archive)", s)
}

// sink is where an export goes: a tar stream or a layout directory.
type sink interface {
	// blob writes size bytes from r as blobs/<alg>/<hex>.
	blob(d digest.Digest, size int64, r io.Reader) error
	// hasBlob tells whether the blob is there already.
	hasBlob(d digest.Digest) bool
}

// exporter writes images' blobs into a sink and collects what the
// metadata files need.
type exporter struct {
	ctx    context.Context
	cs     content.Store
	sink   sink
	format Format
	done   map[digest.Digest]bool

	index    []ocispec.Descriptor
	items    []manifestItem
	repos    map[string]map[string]string
	itemByID map[string]int
}

func newExporter(ctx context.Context, cs content.Store, s sink, f Format) *exporter {
	return &exporter{ctx: ctx, cs: cs, sink: s, format: f, done: map[digest.Digest]bool{},
		repos: map[string]map[string]string{}, itemByID: map[string]int{}}
}

func blobPath(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// copyBlob copies a stored blob into the sink, once.
func (e *exporter) copyBlob(desc ocispec.Descriptor) error {
	if e.done[desc.Digest] || e.sink.hasBlob(desc.Digest) {
		e.done[desc.Digest] = true
		return nil
	}
	ra, err := e.cs.ReaderAt(e.ctx, desc)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return fmt.Errorf("blob %s: stored size %d, descriptor says %d", desc.Digest, ra.Size(), desc.Size)
	}
	if err := e.sink.blob(desc.Digest, desc.Size, &ctxReader{ctx: e.ctx, r: io.NewSectionReader(ra, 0, desc.Size)}); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	e.done[desc.Digest] = true
	return nil
}

func (e *exporter) putBytes(d digest.Digest, p []byte) error {
	if e.done[d] || e.sink.hasBlob(d) {
		e.done[d] = true
		return nil
	}
	if err := e.sink.blob(d, int64(len(p)), bytes.NewReader(p)); err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	e.done[d] = true
	return nil
}

// uncompressedLayer is what a compressed layer decompresses to.
type uncompressedLayer struct {
	diffID digest.Digest
	size   int64
}

// measure decompresses the compressed layers of img (several at once) to
// learn their sizes, checking each against the config's diff_id.
func (e *exporter) measure(img image) (map[digest.Digest]uncompressedLayer, error) {
	out := map[digest.Digest]uncompressedLayer{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(img.manifest.Layers))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, l := range img.manifest.Layers {
		c, err := e.layerCompression(l)
		if err != nil {
			return nil, err
		}
		if c == uncompressed {
			continue
		}
		want := img.config.RootFS.DiffIDs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			got, n, err := diffID(e.ctx, e.cs, l, c)
			if err != nil {
				errs[i] = fmt.Errorf("layer %s: %w", l.Digest, err)
				return
			}
			if got != want {
				errs[i] = fmt.Errorf("layer %s decompresses to %s but the config's diff_id is %s", l.Digest, got, want)
				return
			}
			mu.Lock()
			out[l.Digest] = uncompressedLayer{diffID: got, size: n}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (e *exporter) layerCompression(l ocispec.Descriptor) (compression, error) {
	if c, ok := layerCompression(l.MediaType); ok {
		return c, nil
	}
	c, err := sniffCompression(e.ctx, e.cs, l)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	return c, nil
}

// writeUncompressed writes a compressed stored layer decompressed.
func (e *exporter) writeUncompressed(l ocispec.Descriptor, c compression, u uncompressedLayer) error {
	if e.done[u.diffID] || e.sink.hasBlob(u.diffID) {
		e.done[u.diffID] = true
		return nil
	}
	ra, err := e.cs.ReaderAt(e.ctx, l)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer ra.Close()
	d, err := decompress(&ctxReader{ctx: e.ctx, r: io.NewSectionReader(ra, 0, ra.Size())}, c)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer d.Close()
	if err := e.sink.blob(u.diffID, u.size, newReadahead(d)); err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	e.done[u.diffID] = true
	return nil
}

// add exports one image.
func (e *exporter) add(it SaveItem) error {
	var refs []reference.Reference
	for _, n := range it.Names {
		r, err := reference.ParseDocker(n)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	img, err := resolveImage(e.ctx, e.cs, it.Manifest)
	if err != nil {
		return err
	}
	m := img.manifest
	isImage := isImageConfigType(m.Config.MediaType)
	if e.format == FormatDocker && !isImage {
		return fmt.Errorf("manifest %s: config media type %q is not a container image's", img.desc.Digest, m.Config.MediaType)
	}
	manifestDesc := ocispec.Descriptor{MediaType: img.desc.MediaType, Digest: img.desc.Digest, Size: img.desc.Size}
	layers := m.Layers
	var u map[digest.Digest]uncompressedLayer
	if e.format == FormatDocker {
		if u, err = e.measure(img); err != nil {
			return err
		}
	}
	if len(u) > 0 {
		// Docker's layout: a new OCI manifest naming the uncompressed layers.
		nm := m
		nm.MediaType = ocispec.MediaTypeImageManifest
		if nm.Config.MediaType == mediaTypeDockerConfig {
			nm.Config.MediaType = ocispec.MediaTypeImageConfig
		}
		nm.Layers = make([]ocispec.Descriptor, len(m.Layers))
		for i, l := range m.Layers {
			if ul, ok := u[l.Digest]; ok {
				nm.Layers[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: ul.diffID, Size: ul.size}
			} else {
				nm.Layers[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l.Digest, Size: l.Size, Annotations: l.Annotations}
			}
		}
		layers = nm.Layers
		p, err := json.Marshal(nm)
		if err != nil {
			return err
		}
		manifestDesc = ocispec.Descriptor{MediaType: nm.MediaType, Digest: digest.FromBytes(p), Size: int64(len(p))}
		for i, l := range m.Layers {
			if ul, ok := u[l.Digest]; ok {
				c, _ := e.layerCompression(l)
				if err := e.writeUncompressed(l, c, ul); err != nil {
					return err
				}
			} else if err := e.copyBlob(m.Layers[i]); err != nil {
				return err
			}
		}
		if err := e.copyBlob(m.Config); err != nil {
			return err
		}
		if err := e.putBytes(manifestDesc.Digest, p); err != nil {
			return err
		}
	} else {
		for _, l := range m.Layers {
			if err := e.copyBlob(l); err != nil {
				return err
			}
		}
		if err := e.copyBlob(m.Config); err != nil {
			return err
		}
		if err := e.copyBlob(manifestDesc); err != nil {
			return err
		}
	}

	// index.json: one entry per name.
	if len(refs) == 0 {
		e.index = append(e.index, manifestDesc)
	}
	for _, r := range refs {
		d := manifestDesc
		d.Annotations = map[string]string{annotationImageName: r.String()}
		switch {
		case e.format == FormatDocker && r.Tag != "":
			d.Annotations[ocispec.AnnotationRefName] = r.Tag // as Docker ≥25 writes it
		case e.format != FormatDocker:
			d.Annotations[ocispec.AnnotationRefName] = r.Familiar()
		}
		e.index = append(e.index, d)
	}
	if !isImage {
		return nil
	}

	// manifest.json and repositories.
	var tags []string
	for _, r := range refs {
		if r.Tag == "" {
			continue // Docker's RepoTags are tags only
		}
		repo := r.FamiliarName()
		tags = append(tags, repo+":"+r.Tag)
		if len(layers) > 0 {
			if e.repos[repo] == nil {
				e.repos[repo] = map[string]string{}
			}
			e.repos[repo][r.Tag] = layers[len(layers)-1].Digest.Encoded()
		}
	}
	item := manifestItem{Config: blobPath(m.Config.Digest), RepoTags: tags}
	for _, l := range layers {
		item.Layers = append(item.Layers, blobPath(l.Digest))
	}
	key := manifestDesc.Digest.String()
	if i, ok := e.itemByID[key]; ok {
		for _, t := range tags {
			e.items[i].RepoTags = appendName(e.items[i].RepoTags, t)
		}
		return nil
	}
	e.itemByID[key] = len(e.items)
	e.items = append(e.items, item)
	return nil
}

// Save writes items from cs to w as an archive of the given format. Blobs
// stream from the store; compressed layers of a FormatDocker archive are
// decompressed twice (once to learn the tar entry's size and check the
// diff_id, once to write), so nothing is spooled to disk.
func Save(ctx context.Context, w io.Writer, cs content.Store, items []SaveItem, format Format) error {
	if format != FormatDocker && format != FormatOCI {
		return fmt.Errorf("save: unknown archive format %d", format)
	}
	if len(items) == 0 {
		return errors.New("save: no images")
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	ts := &tarSink{tw: tar.NewWriter(bw), buf: make([]byte, 1<<20)}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := ts.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	e := newExporter(ctx, cs, ts, format)
	for _, it := range items {
		if err := e.add(it); err != nil {
			return fmt.Errorf("save %s %v: %w", it.Manifest.Digest, it.Names, err)
		}
	}
	idx := ocispec.Index{Manifests: e.index, MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	files := []struct {
		name string
		v    any
	}{
		{"index.json", idx},
		{"manifest.json", e.items},
		{"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}},
	}
	if format == FormatDocker {
		files = append(files, struct {
			name string
			v    any
		}{"repositories", e.repos})
	}
	for _, f := range files {
		p, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := ts.file(f.name, p); err != nil {
			return fmt.Errorf("save: %s: %w", f.name, err)
		}
	}
	if err := ts.tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// tarSink writes blobs as tar entries.
type tarSink struct {
	tw  *tar.Writer
	buf []byte
}

func (t *tarSink) hasBlob(digest.Digest) bool { return false }

func (t *tarSink) blob(d digest.Digest, size int64, r io.Reader) error {
	if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: blobPath(d), Size: size, Mode: 0o644, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	n, err := io.CopyBuffer(writerOnly{t.tw}, readerOnly{r}, t.buf)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("read %d bytes, want %d", n, size)
	}
	return nil
}

func (t *tarSink) file(name string, p []byte) error {
	if err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(p)), Mode: 0o644, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := t.tw.Write(p)
	return err
}

// readerOnly hides a reader's WriteTo so that io.CopyBuffer uses its buffer.
type readerOnly struct{ io.Reader }
