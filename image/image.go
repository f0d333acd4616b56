package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/berth-project/berth/image/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Image is an image the store has.
type Image struct {
	// ID is the config's digest, "sha256:<hex>".
	ID string
	// RepoTags and RepoDigests are in Docker's familiar form
	// ("busybox:1.35", "localhost:5000/x@sha256:...").
	RepoTags    []string
	RepoDigests []string
	// Manifest is the image manifest (for the chosen platform); Index the
	// index it was picked from, when registered through one.
	Manifest ocispec.Descriptor
	Index    *ocispec.Descriptor
	// ConfigDescriptor is the config blob; Config its contents.
	ConfigDescriptor ocispec.Descriptor
	Config           *v1.ConfigFile
	// Layers are the manifest's layer blobs, bottom first; DiffIDs their
	// uncompressed digests and ChainIDs the snapshot keys they unpack to.
	Layers   []ocispec.Descriptor
	DiffIDs  []digest.Digest
	ChainIDs []digest.Digest
	// Created is the config's creation time.
	Created time.Time
	// Size is the unpacked size of the layers (Docker's SIZE), counting
	// the compressed size of layers not unpacked yet.
	Size int64
	// Platform comes from the config.
	Platform ocispec.Platform
	// Parent is the image this one was committed on, if any.
	Parent string
	// LastTagTime is when the image was last registered or tagged.
	LastTagTime time.Time
}

// ShortID is the first 12 hex digits of the ID, as docker images prints.
func (img *Image) ShortID() string {
	h := strings.TrimPrefix(img.ID, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// TopChainID is the snapshot key of the image's top layer ("" for an
// image without layers): the parent of a container's root filesystem.
func (img *Image) TopChainID() string {
	if len(img.ChainIDs) == 0 {
		return ""
	}
	return img.ChainIDs[len(img.ChainIDs)-1].String()
}

// record is what the database keeps per image.
type record struct {
	ID          string               `json:"id"`
	Manifest    ocispec.Descriptor   `json:"manifest"`
	Index       *ocispec.Descriptor  `json:"index,omitempty"`
	ConfigDesc  ocispec.Descriptor   `json:"configDescriptor"`
	Config      json.RawMessage      `json:"config"`
	Layers      []ocispec.Descriptor `json:"layers"`
	DiffIDs     []digest.Digest      `json:"diffIDs"`
	Parent      string               `json:"parent,omitempty"`
	LastTagTime time.Time            `json:"lastTagTime"`
}

type layerRecord struct {
	DiffID digest.Digest `json:"diffID"`
	Size   int64         `json:"size"`
}

// ChainIDs computes the chain IDs of a layer stack from its diff IDs.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

func getRecord(tx *bolt.Tx, id string) (*record, error) {
	b := tx.Bucket([]byte(bucketImages))
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("image database: record of %s: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, r *record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket([]byte(bucketImages)).Put([]byte(r.ID), v)
}

func allRecords(tx *bolt.Tx) ([]*record, error) {
	b := tx.Bucket([]byte(bucketImages))
	if b == nil {
		return nil, nil
	}
	var out []*record
	err := b.ForEach(func(k, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("image database: record of %s: %w", k, err)
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

// refsByID maps image IDs to their full reference strings.
func refsByID(tx *bolt.Tx) map[string][]string {
	m := map[string][]string{}
	if b := tx.Bucket([]byte(bucketRefs)); b != nil {
		b.ForEach(func(k, v []byte) error {
			m[string(v)] = append(m[string(v)], string(k))
			return nil
		})
	}
	return m
}

func refsOf(tx *bolt.Tx, id string) []string {
	var out []string
	if b := tx.Bucket([]byte(bucketRefs)); b != nil {
		b.ForEach(func(k, v []byte) error {
			if string(v) == id {
				out = append(out, string(k))
			}
			return nil
		})
	}
	return out
}

func layerSizes(tx *bolt.Tx) map[string]int64 {
	m := map[string]int64{}
	if b := tx.Bucket([]byte(bucketLayers)); b != nil {
		b.ForEach(func(k, v []byte) error {
			var l layerRecord
			if json.Unmarshal(v, &l) == nil {
				m[string(k)] = l.Size
			}
			return nil
		})
	}
	return m
}

// build makes the Image of a record with its references.
func build(r *record, refs []string, sizes map[string]int64) (*Image, error) {
	var cfg v1.ConfigFile
	if err := json.Unmarshal(r.Config, &cfg); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", r.ID, err)
	}
	img := &Image{
		ID:               r.ID,
		Manifest:         r.Manifest,
		Index:            r.Index,
		ConfigDescriptor: r.ConfigDesc,
		Config:           &cfg,
		Layers:           r.Layers,
		DiffIDs:          r.DiffIDs,
		ChainIDs:         ChainIDs(r.DiffIDs),
		Created:          cfg.Created.Time,
		Platform:         ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion},
		Parent:           r.Parent,
		LastTagTime:      r.LastTagTime,
	}
	sort.Strings(refs)
	for _, ref := range refs {
		pr, err := reference.Parse(ref)
		if err != nil {
			continue
		}
		if pr.Digest != "" {
			img.RepoDigests = append(img.RepoDigests, pr.Familiar())
		} else {
			img.RepoTags = append(img.RepoTags, pr.Familiar())
		}
	}
	sort.Strings(img.RepoTags)
	sort.Strings(img.RepoDigests)
	for i, c := range img.ChainIDs {
		if n, ok := sizes[c.String()]; ok {
			img.Size += n
		} else {
			img.Size += r.Layers[i].Size
		}
	}
	return img, nil
}

// resolve finds the image ID a user's string names, in Docker's order: a
// full ID, a reference (name[:tag], name@digest), then a unique ID prefix.
// byName reports whether it matched as a reference (the full reference
// string is returned then).
func resolve(tx *bolt.Tx, s string) (id string, ref string, err error) {
	images := tx.Bucket([]byte(bucketImages))
	refs := tx.Bucket([]byte(bucketRefs))
	if images == nil || refs == nil {
		return "", "", fmt.Errorf("%w: %s", ErrNotFound, s)
	}
	if reference.IsFullID(s) {
		id := "sha256:" + strings.TrimPrefix(s, "sha256:")
		if images.Get([]byte(id)) != nil {
			return id, "", nil
		}
		return "", "", fmt.Errorf("%w: %s", ErrNotFound, s)
	}
	if r, perr := reference.ParseDocker(s); perr == nil {
		if v := refs.Get([]byte(r.String())); v != nil {
			return string(v), r.String(), nil
		}
		if r.Digest != "" && r.Tag != "" {
			// name:tag@digest: the digest decides.
			r.Tag = ""
			if v := refs.Get([]byte(r.String())); v != nil {
				return string(v), r.String(), nil
			}
		}
		if r.Digest != "" {
			// A manifest digest the image was registered by, in the same
			// repository under another reference.
			var found string
			images.ForEach(func(k, v []byte) error {
				var rec record
				if json.Unmarshal(v, &rec) == nil && (rec.Manifest.Digest == r.Digest || rec.Index != nil && rec.Index.Digest == r.Digest) {
					for _, ref := range refsOf(tx, rec.ID) {
						if pr, err := reference.Parse(ref); err == nil && pr.Name() == r.Name() {
							found = rec.ID
						}
					}
				}
				return nil
			})
			if found != "" {
				return found, "", nil
			}
		}
		if !reference.IsIDPrefix(s) {
			return "", "", fmt.Errorf("%w: %s", ErrNotFound, s)
		}
	} else if !reference.IsIDPrefix(s) {
		return "", "", fmt.Errorf("%w: %s: %v", ErrInvalid, s, perr)
	}
	prefix := []byte("sha256:" + strings.TrimPrefix(s, "sha256:"))
	var matches []string
	c := images.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		matches = append(matches, string(k))
	}
	switch len(matches) {
	case 0:
		return "", "", fmt.Errorf("%w: %s", ErrNotFound, s)
	case 1:
		return matches[0], "", nil
	}
	return "", "", fmt.Errorf("%w: %d images have IDs starting with %q; give more digits", ErrInvalid, len(matches), s)
}

// Get finds an image by name[:tag], name@digest, full or short ID (with
// or without "sha256:"). An unknown one is an error wrapping ErrNotFound
// that names it: "no such image: x".
func (s *Service) Get(ctx context.Context, ref string) (*Image, error) {
	var img *Image
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id, _, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		img, err = s.imageTx(tx, id)
		return err
	})
	return img, err
}

func (s *Service) imageTx(tx *bolt.Tx, id string) (*Image, error) {
	r, err := getRecord(tx, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return build(r, refsOf(tx, id), layerSizes(tx))
}

// ListOptions select images as docker images' flags and filters do.
type ListOptions struct {
	// All includes intermediate images (untagged parents of other images).
	All bool
	// Dangling, when set, keeps only untagged (true) or tagged (false)
	// images.
	Dangling *bool
	// Reference keeps images with a tag matching one of these globs
	// (path.Match) on the familiar name or name:tag: "busybox", "busy*",
	// "busybox:1.*".
	Reference []string
	// Label keeps images whose config has every one of these labels
	// ("key" or "key=value").
	Label []string
	// Before and Since keep images created before or after the one named.
	Before, Since string
}

// List returns the selected images, newest first.
func (s *Service) List(ctx context.Context, opts ListOptions) ([]*Image, error) {
	var all []*Image
	err := s.view(ctx, func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		if err != nil {
			return err
		}
		refs := refsByID(tx)
		sizes := layerSizes(tx)
		for _, r := range recs {
			img, err := build(r, refs[r.ID], sizes)
			if err != nil {
				return err
			}
			all = append(all, img)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var before, since *Image
	for _, f := range []struct {
		name string
		p    **Image
	}{{opts.Before, &before}, {opts.Since, &since}} {
		if f.name == "" {
			continue
		}
		img, err := s.Get(ctx, f.name)
		if err != nil {
			return nil, err
		}
		*f.p = img
	}
	for _, p := range opts.Reference {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: reference filter %q: %v", ErrInvalid, p, err)
		}
	}
	parents := map[string]bool{}
	for _, img := range all {
		if img.Parent != "" {
			parents[img.Parent] = true
		}
	}
	var out []*Image
	for _, img := range all {
		tagged := len(img.RepoTags) > 0
		if !opts.All && !tagged && parents[img.ID] {
			continue
		}
		if opts.Dangling != nil && *opts.Dangling == tagged {
			continue
		}
		if len(opts.Reference) > 0 && !matchReference(img, opts.Reference) {
			continue
		}
		if !matchLabels(img, opts.Label) {
			continue
		}
		if before != nil && !img.Created.Before(before.Created) {
			continue
		}
		if since != nil && !img.Created.After(since.Created) {
			continue
		}
		out = append(out, img)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func matchReference(img *Image, patterns []string) bool {
	for _, t := range img.RepoTags {
		r, err := reference.Parse(t)
		if err != nil {
			continue
		}
		for _, p := range patterns {
			if ok, _ := path.Match(p, r.FamiliarName()); ok {
				return true
			}
			if ok, _ := path.Match(p, r.Familiar()); ok {
				return true
			}
			if ok, _ := path.Match(p, r.String()); ok {
				return true
			}
		}
	}
	return false
}

func matchLabels(img *Image, labels []string) bool {
	for _, l := range labels {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := img.Config.Config.Labels[k]
		if !ok || hasV && got != v {
			return false
		}
	}
	return true
}
