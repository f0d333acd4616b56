package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/berth-project/berth/image/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of Docker's image formats (the OCI ones are in ocispec).
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerForeignGzip  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeOCILayerZstd       = "application/vnd.oci.image.layer.v1.tar+zstd"

	// annotationImageName is the full image name containerd (and Docker ≥25)
	// put in index.json beside org.opencontainers.image.ref.name.
	annotationImageName = "io.containerd.image.name"
)

// maxJSON bounds the manifests, indexes and configs this package reads.
const maxJSON = 16 << 20

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerManifestList
}

func isImageConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == mediaTypeDockerConfig
}

// layerCompression is the compression a layer media type says; ok is false
// for media types that are not layers this package knows.
func layerCompression(mt string) (c compression, ok bool) {
	switch mt {
	case ocispec.MediaTypeImageLayer, mediaTypeDockerLayer, ocispec.MediaTypeImageLayerNonDistributable: //nolint:staticcheck // still met in the wild
		return uncompressed, true
	case ocispec.MediaTypeImageLayerGzip, mediaTypeDockerLayerGzip, mediaTypeDockerForeignGzip, ocispec.MediaTypeImageLayerNonDistributableGzip: //nolint:staticcheck
		return compressGzip, true
	case ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageLayerNonDistributableZstd: //nolint:staticcheck
		return compressZstd, true
	}
	return 0, false
}

// readJSON reads a small blob from the store and decodes it into v.
func readJSON(ctx context.Context, cs content.Store, desc ocispec.Descriptor, v any) error {
	if desc.Size > maxJSON || desc.Size < 0 {
		return fmt.Errorf("blob %s: size %d out of range for a manifest or config", desc.Digest, desc.Size)
	}
	p, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	if int64(len(p)) != desc.Size {
		return fmt.Errorf("blob %s: size %d, descriptor says %d", desc.Digest, len(p), desc.Size)
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

// sniffMediaType returns desc's media type, reading it from the blob when
// the descriptor has none.
func sniffMediaType(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (string, error) {
	if desc.MediaType != "" {
		return desc.MediaType, nil
	}
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
		Layers    []json.RawMessage `json:"layers"`
	}
	if err := readJSON(ctx, cs, desc, &probe); err != nil {
		return "", err
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType, nil
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case probe.Layers != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("blob %s: neither a manifest nor an index", desc.Digest)
}

// checkBlob checks that the store holds desc with desc's size.
func checkBlob(ctx context.Context, cs content.Store, desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("invalid digest %q: %w", desc.Digest, err)
	}
	info, err := cs.Info(ctx, desc.Digest)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if info.Size != desc.Size {
		return fmt.Errorf("blob %s: size %d, descriptor says %d", desc.Digest, info.Size, desc.Size)
	}
	return nil
}

// image is a verified image manifest and its config.
type image struct {
	desc     ocispec.Descriptor // the manifest
	manifest ocispec.Manifest
	config   ocispec.Image // zero for a non-image config
}

// resolveImage follows desc (a manifest, or an index from which the
// manifest for this machine's platform is taken) and checks that the store
// holds the manifest, its config and its layers, and that uncompressed
// layers' digests are the config's diff_ids.
func resolveImage(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (image, error) {
	for depth := 0; ; depth++ {
		if depth > 4 {
			return image{}, fmt.Errorf("index %s: indexes nested too deep", desc.Digest)
		}
		if err := checkBlob(ctx, cs, desc); err != nil {
			return image{}, err
		}
		mt, err := sniffMediaType(ctx, cs, desc)
		if err != nil {
			return image{}, err
		}
		desc.MediaType = mt
		switch {
		case isManifestType(mt):
			return checkManifest(ctx, cs, desc)
		case isIndexType(mt):
			child, err := pickPlatform(ctx, cs, desc)
			if err != nil {
				return image{}, err
			}
			desc = child
		default:
			return image{}, fmt.Errorf("blob %s: media type %q is not an image manifest or index", desc.Digest, mt)
		}
	}
}

// pickPlatform returns the manifest of index for this machine, among those
// the store holds.
func pickPlatform(ctx context.Context, cs content.Store, index ocispec.Descriptor) (ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := readJSON(ctx, cs, index, &idx); err != nil {
		return ocispec.Descriptor{}, err
	}
	var present []ocispec.Descriptor
	for _, m := range idx.Manifests {
		if m.Digest.Validate() != nil {
			continue
		}
		if _, err := cs.Info(ctx, m.Digest); err == nil {
			present = append(present, m)
		}
	}
	for _, m := range present {
		if m.Platform != nil && m.Platform.OS == runtime.GOOS && m.Platform.Architecture == runtime.GOARCH {
			return m, nil
		}
	}
	for _, m := range present {
		if m.Platform == nil && !isAttestation(m) {
			return m, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("index %s: no manifest for %s/%s among the %d present (of %d listed)",
		index.Digest, runtime.GOOS, runtime.GOARCH, len(present), len(idx.Manifests))
}

func isAttestation(d ocispec.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] != ""
}

func checkManifest(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (image, error) {
	img := image{desc: desc}
	if err := readJSON(ctx, cs, desc, &img.manifest); err != nil {
		return img, err
	}
	m := &img.manifest
	if m.SchemaVersion != 2 {
		return img, fmt.Errorf("manifest %s: schemaVersion %d, want 2", desc.Digest, m.SchemaVersion)
	}
	if err := checkBlob(ctx, cs, m.Config); err != nil {
		return img, fmt.Errorf("manifest %s: config: %w", desc.Digest, err)
	}
	for i, l := range m.Layers {
		if err := checkBlob(ctx, cs, l); err != nil {
			return img, fmt.Errorf("manifest %s: layer %d: %w", desc.Digest, i, err)
		}
	}
	if !isImageConfigType(m.Config.MediaType) {
		return img, nil
	}
	if err := readJSON(ctx, cs, m.Config, &img.config); err != nil {
		return img, fmt.Errorf("manifest %s: config: %w", desc.Digest, err)
	}
	diffIDs := img.config.RootFS.DiffIDs
	if len(diffIDs) != len(m.Layers) {
		return img, fmt.Errorf("manifest %s: %d layers but config %s lists %d diff_ids", desc.Digest, len(m.Layers), m.Config.Digest, len(diffIDs))
	}
	for i, l := range m.Layers {
		if c, ok := layerCompression(l.MediaType); ok && c == uncompressed && l.Digest != diffIDs[i] {
			return img, fmt.Errorf("manifest %s: layer %d is %s but config's diff_id is %s", desc.Digest, i, l.Digest, diffIDs[i])
		}
	}
	return img, nil
}

// diffID hashes the decompressed content of a stored layer.
func diffID(ctx context.Context, cs content.Store, desc ocispec.Descriptor, c compression) (digest.Digest, int64, error) {
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		return "", 0, err
	}
	defer ra.Close()
	d, err := decompress(&ctxReader{ctx: ctx, r: io.NewSectionReader(ra, 0, ra.Size())}, c)
	if err != nil {
		return "", 0, err
	}
	defer d.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, d, make([]byte, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("decompress %s: %w", c, err)
	}
	return digest.NewDigest(digest.SHA256, h), n, nil
}

// sniffCompression reads the first bytes of a stored blob.
func sniffCompression(ctx context.Context, cs content.Store, desc ocispec.Descriptor) (compression, error) {
	ra, err := cs.ReaderAt(ctx, desc)
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	head := make([]byte, 6)
	n, err := ra.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	return detect(head[:n]), nil
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// putBytes stores a small blob with the given media type.
func putBytes(ctx context.Context, cs content.Store, mediaType string, p []byte) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(p), Size: int64(len(p))}
	if err := content.WriteBlob(ctx, cs, desc, bytes.NewReader(p)); err != nil {
		return desc, fmt.Errorf("store blob %s: %w", desc.Digest, err)
	}
	return desc, nil
}
