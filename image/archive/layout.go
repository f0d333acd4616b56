package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/internal/atomicfile"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReadLayout copies the image named ref (matched against the index.json
// annotations org.opencontainers.image.ref.name and io.containerd.image.name,
// as given or normalised: web:1 matches docker.io/library/web:1) from the
// OCI image layout directory dir into cs, each blob verified by the store,
// and returns it. An empty ref takes the layout's only image. A ref the
// layout does not have is an error listing the names it has.
func ReadLayout(ctx context.Context, dir string, ref string, cs content.Store) (Loaded, error) {
	p, err := os.ReadFile(filepath.Join(dir, ocispec.ImageLayoutFile))
	if err != nil {
		return Loaded{}, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	if err := checkLayoutFile(p); err != nil {
		return Loaded{}, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	idx, err := readIndexFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return Loaded{}, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	desc, names, err := findRef(idx, ref)
	if err != nil {
		return Loaded{}, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	lr := &layoutReader{ctx: ctx, dir: dir, cs: cs}
	img, err := lr.copyImage(desc)
	if err != nil {
		return Loaded{}, fmt.Errorf("oci layout %s: image %s: %w", dir, ref, err)
	}
	return Loaded{Names: names, Manifest: ocispec.Descriptor{MediaType: img.desc.MediaType, Digest: img.desc.Digest, Size: img.desc.Size, Platform: img.desc.Platform}}, nil
}

func readIndexFile(name string) (ocispec.Index, error) {
	var idx ocispec.Index
	f, err := os.Open(name)
	if err != nil {
		return idx, err
	}
	defer f.Close()
	if err := json.NewDecoder(io.LimitReader(f, maxJSON)).Decode(&idx); err != nil {
		return idx, fmt.Errorf("index.json: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return idx, fmt.Errorf("index.json: schemaVersion %d, want 2", idx.SchemaVersion)
	}
	return idx, nil
}

// findRef picks the index entry named ref and returns it with the image's
// normalised names.
func findRef(idx ocispec.Index, ref string) (ocispec.Descriptor, []string, error) {
	var have []string
	for _, d := range idx.Manifests {
		if n := d.Annotations[ocispec.AnnotationRefName]; n != "" {
			have = append(have, n)
		} else if n := d.Annotations[annotationImageName]; n != "" {
			have = append(have, n)
		}
	}
	sort.Strings(have)
	if ref == "" {
		if len(idx.Manifests) == 1 {
			names, _ := indexNames(idx.Manifests[0].Annotations)
			return idx.Manifests[0], names, nil
		}
		return ocispec.Descriptor{}, nil, fmt.Errorf("it holds %d images, name one: %s", len(idx.Manifests), strings.Join(have, ", "))
	}
	want, _ := normalizeName(ref)
	for _, d := range idx.Manifests {
		for _, key := range []string{ocispec.AnnotationRefName, annotationImageName} {
			n := d.Annotations[key]
			if n == "" {
				continue
			}
			full, _ := normalizeName(n)
			if n == ref || (want != "" && full == want) {
				names, _ := indexNames(d.Annotations)
				if names == nil && want != "" {
					names = []string{want}
				}
				return d, names, nil
			}
		}
	}
	if len(have) == 0 {
		return ocispec.Descriptor{}, nil, fmt.Errorf("no image %q: its index.json names no images", ref)
	}
	return ocispec.Descriptor{}, nil, fmt.Errorf("no image %q; it has: %s", ref, strings.Join(have, ", "))
}

type layoutReader struct {
	ctx context.Context
	dir string
	cs  content.Store
}

// blobFile is the path of a blob in the layout.
func (lr *layoutReader) blobFile(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("invalid digest %q: %w", d, err)
	}
	return filepath.Join(lr.dir, "blobs", string(d.Algorithm()), d.Encoded()), nil
}

// copyBlob copies one blob from the layout into the store; the store
// verifies its size and digest.
func (lr *layoutReader) copyBlob(desc ocispec.Descriptor) error {
	if _, err := lr.cs.Info(lr.ctx, desc.Digest); err == nil {
		return nil
	}
	name, err := lr.blobFile(desc.Digest)
	if err != nil {
		return err
	}
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob %s is missing from the layout", desc.Digest)
		}
		return err
	}
	defer f.Close()
	if err := content.WriteBlob(lr.ctx, lr.cs, desc, f); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

// copyImage copies a manifest (or index, then this platform's manifest),
// its config and layers, then verifies the whole image in the store.
func (lr *layoutReader) copyImage(desc ocispec.Descriptor) (image, error) {
	for depth := 0; ; depth++ {
		if depth > 4 {
			return image{}, errors.New("indexes nested too deep")
		}
		if desc.Size > maxJSON || desc.Size < 0 {
			return image{}, fmt.Errorf("blob %s: size %d out of range for a manifest", desc.Digest, desc.Size)
		}
		if err := lr.copyBlob(desc); err != nil {
			return image{}, err
		}
		mt, err := sniffMediaType(lr.ctx, lr.cs, desc)
		if err != nil {
			return image{}, err
		}
		desc.MediaType = mt
		if isManifestType(mt) {
			break
		}
		if !isIndexType(mt) {
			return image{}, fmt.Errorf("blob %s: media type %q is not an image manifest or index", desc.Digest, mt)
		}
		var idx ocispec.Index
		if err := readJSON(lr.ctx, lr.cs, desc, &idx); err != nil {
			return image{}, err
		}
		// Copy the manifests the layout has, then pick this platform's.
		for _, m := range idx.Manifests {
			if name, err := lr.blobFile(m.Digest); err == nil && m.Size <= maxJSON {
				if _, err := os.Stat(name); err == nil {
					if err := lr.copyBlob(m); err != nil {
						return image{}, err
					}
				}
			}
		}
		if desc, err = pickPlatform(lr.ctx, lr.cs, desc); err != nil {
			return image{}, err
		}
	}
	var m ocispec.Manifest
	if err := readJSON(lr.ctx, lr.cs, desc, &m); err != nil {
		return image{}, err
	}
	if m.Config.Size > maxJSON {
		return image{}, fmt.Errorf("config %s: size %d out of range", m.Config.Digest, m.Config.Size)
	}
	blobs := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	errs := make([]error, len(blobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, b := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = lr.copyBlob(b)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return image{}, err
	}
	return checkManifest(lr.ctx, lr.cs, desc)
}

// WriteLayout writes items into the OCI image layout directory dir
// (created if missing; an existing layout keeps its other images, and an
// entry with one of the same names is replaced). Blobs are kept as stored.
// Every file is written to a temporary name and renamed, and index.json
// last, so a layout interrupted at any point is still valid.
func WriteLayout(ctx context.Context, dir string, cs content.Store, items []SaveItem) error {
	if len(items) == 0 {
		return errors.New("write layout: no images")
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	layoutFile := filepath.Join(dir, ocispec.ImageLayoutFile)
	if p, err := os.ReadFile(layoutFile); err == nil {
		if err := checkLayoutFile(p); err != nil {
			return fmt.Errorf("write layout %s: %w", dir, err)
		}
	} else {
		p, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := atomicfile.WriteFile(layoutFile, p, 0o644, true); err != nil {
			return fmt.Errorf("write layout: %w", err)
		}
	}
	idxFile := filepath.Join(dir, "index.json")
	idx, err := readIndexFile(idxFile)
	if errors.Is(err, fs.ErrNotExist) {
		idx = ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
		idx.SchemaVersion = 2
	} else if err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	e := newExporter(ctx, cs, &dirSink{dir: dir, buf: make([]byte, 1<<20)}, FormatOCI)
	for _, it := range items {
		if err := e.add(it); err != nil {
			return fmt.Errorf("write layout %s: %s %v: %w", dir, it.Manifest.Digest, it.Names, err)
		}
	}
	replaced := map[string]bool{}
	for _, d := range e.index {
		if n := d.Annotations[annotationImageName]; n != "" {
			replaced[n] = true
		}
	}
	var keep []ocispec.Descriptor
	for _, d := range idx.Manifests {
		names, _ := indexNames(d.Annotations)
		if len(names) == 1 && replaced[names[0]] {
			continue
		}
		keep = append(keep, d)
	}
	idx.Manifests = append(keep, e.index...)
	p, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(idxFile, p, 0o644, true); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	return nil
}

// dirSink writes blobs into a layout directory.
type dirSink struct {
	dir string
	buf []byte
}

func (s *dirSink) path(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", string(d.Algorithm()), d.Encoded())
}

func (s *dirSink) hasBlob(d digest.Digest) bool {
	_, err := os.Stat(s.path(d))
	return err == nil
}

func (s *dirSink) blob(d digest.Digest, size int64, r io.Reader) error {
	name := s.path(d)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(name, 0o644, true, func(f *os.File) error {
		n, err := io.CopyBuffer(writerOnly{f}, readerOnly{r}, s.buf)
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes, want %d", n, size)
		}
		return err
	})
}
