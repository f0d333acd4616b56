package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Media types berth reads besides the OCI ones.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeDockerLayerTar     = "application/vnd.docker.image.rootfs.diff.tar"
	mediaTypeOCILayerZstd       = "application/vnd.oci.image.layer.v1.tar+zstd"
)

// IsLayerMediaType reports whether berth can unpack a layer of this type
// (a tar, plain or gzip- or zstd-compressed, OCI or Docker).
func IsLayerMediaType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, mediaTypeOCILayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		MediaTypeDockerLayerGzip, MediaTypeDockerLayerForeign, MediaTypeDockerLayerTar:
		return true
	}
	return false
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// RegisterOption tunes Register.
type RegisterOption func(*registerConfig)

type registerConfig struct {
	platform *ocispec.Platform
	parent   string
}

// WithPlatform picks this platform's manifest from an index instead of
// Options.Platform.
func WithPlatform(p ocispec.Platform) RegisterOption {
	return func(c *registerConfig) { c.platform = &p }
}

// WithParent records the image a new one was committed on.
func WithParent(id string) RegisterOption {
	return func(c *registerConfig) { c.parent = id }
}

// Register records the image whose manifest (or index: the manifest for
// the platform is picked) desc names, with its manifest, config and layer
// blobs already in the content store, under names (name[:tag], or
// name@digest to record a repo digest; a name without either gets
// ":latest"). It checks that the manifest and config parse, that the
// config is an image config with one diff ID per layer, and that every
// blob is there with the size the manifest gives. A name another image
// had moves to this one. Registering an image again adds the names.
func (s *Service) Register(ctx context.Context, desc ocispec.Descriptor, names []string, opts ...RegisterOption) (*Image, error) {
	var cfg registerConfig
	for _, o := range opts {
		o(&cfg)
	}
	platform := s.platform()
	if cfg.platform != nil {
		platform = *cfg.platform
	}
	var refs []reference.Reference
	for _, n := range names {
		r, err := reference.ParseDocker(n)
		if err != nil {
			return nil, fmt.Errorf("%w: image name %q: %v", ErrInvalid, n, err)
		}
		if r.Tag != "" && r.Digest != "" {
			t := r
			t.Digest = ""
			refs = append(refs, t)
			r.Tag = ""
		}
		refs = append(refs, r)
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rec, err := s.readImage(ctx, desc, platform)
	if err != nil {
		return nil, err
	}
	rec.Parent = cfg.parent
	rec.LastTagTime = time.Now().UTC()
	var img *Image
	err = s.update(ctx, func(tx *bolt.Tx) error {
		if old, err := getRecord(tx, rec.ID); err != nil {
			return err
		} else if old != nil && rec.Parent == "" {
			rec.Parent = old.Parent
		}
		if rec.Parent != "" {
			if p, err := getRecord(tx, rec.Parent); err != nil || p == nil {
				rec.Parent = "" // the parent is gone: nothing to link to
			}
		}
		if err := putRecord(tx, rec); err != nil {
			return err
		}
		b := tx.Bucket([]byte(bucketRefs))
		for _, r := range refs {
			if err := b.Put([]byte(r.String()), []byte(rec.ID)); err != nil {
				return err
			}
		}
		img, err = s.imageTx(tx, rec.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("register image %s: %w", rec.ID, err)
	}
	return img, nil
}

// readImage reads and checks the manifest (through an index if need be)
// and the config.
func (s *Service) readImage(ctx context.Context, desc ocispec.Descriptor, platform ocispec.Platform) (*record, error) {
	rec := &record{}
	for depth := 0; ; depth++ {
		if depth > 4 {
			return nil, fmt.Errorf("%w: index %s: indexes nested too deep", ErrInvalid, desc.Digest)
		}
		b, mt, err := s.readManifestBlob(ctx, desc)
		if err != nil {
			return nil, err
		}
		if isManifestType(mt) {
			rec.Manifest = ocispec.Descriptor{MediaType: mt, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform}
			m, err := ParseManifest(b)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest %s: %v", ErrInvalid, desc.Digest, err)
			}
			return rec, s.readConfig(ctx, rec, m)
		}
		idx, err := ParseIndex(b)
		if err != nil {
			return nil, fmt.Errorf("%w: index %s: %v", ErrInvalid, desc.Digest, err)
		}
		if rec.Index == nil {
			d := ocispec.Descriptor{MediaType: mt, Digest: desc.Digest, Size: desc.Size}
			rec.Index = &d
		}
		m, err := pickPlatform(idx, platform)
		if err != nil {
			return nil, fmt.Errorf("%w: index %s: %v", ErrNotFound, desc.Digest, err)
		}
		desc = m
	}
}

// readManifestBlob reads a manifest or index blob and tells which it is.
func (s *Service) readManifestBlob(ctx context.Context, desc ocispec.Descriptor) ([]byte, string, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, "", fmt.Errorf("%w: manifest digest %q: %v", ErrInvalid, desc.Digest, err)
	}
	info, err := s.content.Info(ctx, desc.Digest)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if desc.Size != 0 && info.Size != desc.Size {
		return nil, "", fmt.Errorf("%w: manifest %s: the descriptor says %d bytes, the blob has %d", ErrInvalid, desc.Digest, desc.Size, info.Size)
	}
	if info.Size > 4<<20 {
		return nil, "", fmt.Errorf("%w: manifest %s: %d bytes is too large for a manifest", ErrInvalid, desc.Digest, info.Size)
	}
	b, err := content.ReadBlob(ctx, s.content, ocispec.Descriptor{Digest: desc.Digest, Size: info.Size})
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	mt, err := SniffManifest(b, desc.MediaType)
	if err != nil {
		return nil, "", fmt.Errorf("%w: manifest %s: %v", ErrInvalid, desc.Digest, err)
	}
	return b, mt, nil
}

// SniffManifest tells whether b is an image manifest or an index and
// returns its media type; declared is the descriptor's media type ("" if
// unknown), which must agree with the blob's own mediaType field.
func SniffManifest(b []byte, declared string) (string, error) {
	var probe struct {
		SchemaVersion *int            `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Config        json.RawMessage `json:"config"`
		Layers        json.RawMessage `json:"layers"`
		Manifests     json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("not JSON: %v", err)
	}
	if probe.SchemaVersion == nil {
		return "", errors.New("no schemaVersion")
	}
	if *probe.SchemaVersion != 2 {
		return "", fmt.Errorf("schemaVersion %d is not supported (only 2)", *probe.SchemaVersion)
	}
	mt := probe.MediaType
	if mt == "" {
		switch {
		case declared != "":
			mt = declared
		case probe.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case probe.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		default:
			return "", errors.New("neither an image manifest nor an index")
		}
	} else if declared != "" && declared != mt {
		return "", fmt.Errorf("the descriptor says %s but the blob says %s", declared, mt)
	}
	if !isManifestType(mt) && !isIndexType(mt) {
		return "", fmt.Errorf("unsupported media type %q", mt)
	}
	return mt, nil
}

// ParseManifest parses and checks an image manifest.
func ParseManifest(b []byte) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("schemaVersion %d is not supported (only 2)", m.SchemaVersion)
	}
	if m.Config.Digest == "" {
		return nil, errors.New("no config descriptor")
	}
	if err := checkDescriptor(m.Config); err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, MediaTypeDockerConfig:
	default:
		return nil, fmt.Errorf("config media type %q: not a container image", m.Config.MediaType)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l); err != nil {
			return nil, fmt.Errorf("layer %d: %v", i+1, err)
		}
		if !IsLayerMediaType(l.MediaType) {
			return nil, fmt.Errorf("layer %d (%s): unsupported media type %q", i+1, l.Digest, l.MediaType)
		}
	}
	return &m, nil
}

// ParseIndex parses and checks an image index (or Docker manifest list).
func ParseIndex(b []byte) (*ocispec.Index, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("schemaVersion %d is not supported (only 2)", idx.SchemaVersion)
	}
	for i, m := range idx.Manifests {
		if err := checkDescriptor(m); err != nil {
			return nil, fmt.Errorf("manifest %d: %v", i+1, err)
		}
	}
	return &idx, nil
}

func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v", d.Digest, err)
	}
	if d.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %s: only sha256 is supported", d.Digest)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s: negative size %d", d.Digest, d.Size)
	}
	return nil
}

// ParseConfig parses and checks an image config for a manifest with
// layers layers.
func ParseConfig(b []byte, layers int) (*v1.ConfigFile, error) {
	var cfg v1.ConfigFile
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("rootfs type %q (want \"layers\")", cfg.RootFS.Type)
	}
	if len(cfg.RootFS.DiffIDs) != layers {
		return nil, fmt.Errorf("%d diff_ids for %d layers in the manifest", len(cfg.RootFS.DiffIDs), layers)
	}
	for i, d := range cfg.RootFS.DiffIDs {
		if d.Algorithm != "sha256" || len(d.Hex) != 64 {
			return nil, fmt.Errorf("diff_id %d %q: not a sha256 digest", i+1, d.String())
		}
	}
	if cfg.OS == "" {
		return nil, errors.New("no os")
	}
	return &cfg, nil
}

func (s *Service) readConfig(ctx context.Context, rec *record, m *ocispec.Manifest) error {
	info, err := s.content.Info(ctx, m.Config.Digest)
	if err != nil {
		return fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if info.Size != m.Config.Size {
		return fmt.Errorf("%w: config %s: the manifest says %d bytes, the blob has %d", ErrInvalid, m.Config.Digest, m.Config.Size, info.Size)
	}
	if info.Size > 8<<20 {
		return fmt.Errorf("%w: config %s: %d bytes is too large for a config", ErrInvalid, m.Config.Digest, info.Size)
	}
	b, err := content.ReadBlob(ctx, s.content, m.Config)
	if err != nil {
		return fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	cfg, err := ParseConfig(b, len(m.Layers))
	if err != nil {
		return fmt.Errorf("%w: config %s: %v", ErrInvalid, m.Config.Digest, err)
	}
	for i, l := range m.Layers {
		info, err := s.content.Info(ctx, l.Digest)
		if err != nil {
			return fmt.Errorf("layer %d of %d (%s): %w", i+1, len(m.Layers), l.Digest, err)
		}
		if info.Size != l.Size {
			return fmt.Errorf("%w: layer %d (%s): the manifest says %d bytes, the blob has %d", ErrInvalid, i+1, l.Digest, l.Size, info.Size)
		}
	}
	rec.ID = m.Config.Digest.String()
	rec.ConfigDesc = ocispec.Descriptor{MediaType: m.Config.MediaType, Digest: m.Config.Digest, Size: m.Config.Size}
	rec.Config = b
	rec.Layers = make([]ocispec.Descriptor, len(m.Layers))
	for i, l := range m.Layers {
		rec.Layers[i] = ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, URLs: l.URLs}
	}
	rec.DiffIDs = make([]digest.Digest, len(cfg.RootFS.DiffIDs))
	for i, d := range cfg.RootFS.DiffIDs {
		rec.DiffIDs[i] = digest.Digest(d.String())
	}
	return nil
}

// pickPlatform chooses the manifest for p from an index: the same os and
// architecture, and variant when both name one; attestation manifests are
// skipped; a lone manifest without a platform is taken.
func pickPlatform(idx *ocispec.Index, p ocispec.Platform) (ocispec.Descriptor, error) {
	var avail []string
	var candidates []ocispec.Descriptor
	for _, m := range idx.Manifests {
		if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue
		}
		if !isManifestType(m.MediaType) && !isIndexType(m.MediaType) {
			continue
		}
		if m.Platform == nil {
			candidates = append(candidates, m)
			continue
		}
		mp := m.Platform
		avail = append(avail, platformString(*mp))
		if mp.OS == p.OS && mp.Architecture == p.Architecture && (mp.Variant == "" || p.Variant == "" || mp.Variant == p.Variant) {
			return m, nil
		}
	}
	if len(candidates) == 1 && len(avail) == 0 {
		return candidates[0], nil
	}
	if len(avail) == 0 {
		return ocispec.Descriptor{}, errors.New("no image manifest in it")
	}
	return ocispec.Descriptor{}, fmt.Errorf("no manifest for platform %s (it has %s)", platformString(p), strings.Join(avail, ", "))
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
