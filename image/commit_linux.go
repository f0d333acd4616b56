package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Commit makes a new image from parent (nil for none) plus one layer, diff
// (an uncompressed layer tar, as Snapshotter.Diff writes it): the layer is
// gzip-compressed into the content store, unpacked (which checks it is a
// sound tar), and a config (the parent's with changes applied, the layer's
// diff ID and a history entry) and an OCI manifest are written and
// registered under ref ("" for an untagged image). It is what berth commit
// and berth import use.
func (s *Service) Commit(ctx context.Context, diff io.Reader, parent *Image, changes ConfigChanges, ref string) (*Image, error) {
	if s.sn == nil {
		return nil, errors.New("commit: the image store has no snapshotter")
	}
	var names []string
	if ref != "" {
		r, err := reference.ParseDocker(ref)
		if err != nil {
			return nil, fmt.Errorf("%w: commit: image name %q: %v", ErrInvalid, ref, err)
		}
		if r.Digest != "" {
			return nil, fmt.Errorf("%w: commit: image name %q has a digest", ErrInvalid, ref)
		}
		names = []string{r.String()}
	}
	release, err := s.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()

	// Layer: tar -> diff ID hash -> gzip -> content store.
	h := digest.SHA256.Digester()
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.DefaultCompression)
		_, err := io.Copy(zw, io.TeeReader(diff, h.Hash()))
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	layerDesc, err := content.Ingest(ctx, s.content, pr, ocispec.MediaTypeImageLayerGzip)
	pr.CloseWithError(errors.New("commit stopped"))
	if err != nil {
		return nil, fmt.Errorf("commit: write layer: %w", err)
	}
	diffID := h.Digest()

	var cfg v1.ConfigFile
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	var parentID string
	if parent != nil {
		b, err := json.Marshal(parent.Config)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			return nil, err
		}
		for _, l := range parent.Layers {
			l.MediaType = ociLayerType(l.MediaType)
			layers = append(layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
		}
		diffIDs = append(diffIDs, parent.DiffIDs...)
		parentID = parent.ID
	} else {
		cfg = v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH}
		p := s.platform()
		cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	}
	layers = append(layers, layerDesc)
	diffIDs = append(diffIDs, diffID)

	if err := s.unpack(ctx, layers, diffIDs, unpackOptions(nil)); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}

	now := time.Now().UTC()
	changes.Apply(&cfg.Config)
	cfg.Created = v1.Time{Time: now}
	if changes.Author != "" {
		cfg.Author = changes.Author
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = nil
	for _, d := range diffIDs {
		hh, err := v1.NewHash(d.String())
		if err != nil {
			return nil, err
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, hh)
	}
	cfg.History = append(cfg.History, v1.History{Created: v1.Time{Time: now}, Author: changes.Author, CreatedBy: changes.CreatedBy, Comment: changes.Comment})
	cfgBytes, err := json.Marshal(&cfg)
	if err != nil {
		return nil, err
	}
	cfgDesc, err := content.Ingest(ctx, s.content, bytes.NewReader(cfgBytes), ocispec.MediaTypeImageConfig)
	if err != nil {
		return nil, fmt.Errorf("commit: write config: %w", err)
	}
	man := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    layers,
	}
	manBytes, err := json.Marshal(&man)
	if err != nil {
		return nil, err
	}
	manDesc, err := content.Ingest(ctx, s.content, bytes.NewReader(manBytes), ocispec.MediaTypeImageManifest)
	if err != nil {
		return nil, fmt.Errorf("commit: write manifest: %w", err)
	}
	// Register takes a second shared lease; ours keeps the blobs until
	// it has recorded them.
	return s.registerLeased(ctx, manDesc, names, parentID)
}

func (s *Service) registerLeased(ctx context.Context, desc ocispec.Descriptor, names []string, parent string) (*Image, error) {
	opts := []RegisterOption{}
	if parent != "" {
		opts = append(opts, WithParent(parent))
	}
	return s.Register(ctx, desc, names, opts...)
}

func ociLayerType(mt string) string {
	switch mt {
	case MediaTypeDockerLayerGzip, MediaTypeDockerLayerForeign:
		return ocispec.MediaTypeImageLayerGzip
	case MediaTypeDockerLayerTar:
		return ocispec.MediaTypeImageLayer
	}
	return mt
}

// Import makes a one-layer image from a root filesystem tar (plain, or
// gzip-, zstd- or bzip2-compressed), with changes (docker import
// --change) and comment (--message), named ref ("" for none).
func (s *Service) Import(ctx context.Context, r io.Reader, ref string, changes []string, comment string) (*Image, error) {
	c, err := ParseChanges(changes)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	c.Comment = comment
	plain, closeFn, err := Decompress(r)
	if err != nil {
		return nil, fmt.Errorf("%w: import: %v", ErrInvalid, err)
	}
	defer closeFn()
	return s.Commit(ctx, plain, nil, c, ref)
}
