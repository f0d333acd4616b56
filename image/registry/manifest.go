package registry

import (
	"encoding/json"
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of manifests, besides the OCI ones in ocispec.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signd = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// maxManifestSize bounds manifests and indexes read from a registry or the
// store (the distribution registry refuses bigger ones too).
const maxManifestSize = 4 << 20

// maxConfigSize bounds image configs, which are read into memory.
const maxConfigSize = 64 << 20

// acceptManifests is the Accept header of manifest requests.
var acceptManifests = strings.Join([]string{
	ocispec.MediaTypeImageIndex,
	MediaTypeDockerManifestList,
	ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifest,
}, ", ")

// manifestDoc holds the fields berth reads from an image manifest or index
// of either format.
type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
	FSLayers      []json.RawMessage    `json:"fsLayers,omitempty"`
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// parseManifest decodes a manifest or index and decides its media type
// from, in order: the Content-Type the registry sent (when specific), the
// document's mediaType field, its shape. It checks the descriptors it names.
func parseManifest(body []byte, contentType string) (*manifestDoc, string, error) {
	var m manifestDoc
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, "", fmt.Errorf("decode manifest: %w", err)
	}
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	if !isIndex(mt) && !isManifest(mt) {
		mt = m.MediaType
	}
	if mt == "" {
		switch {
		case m.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case m.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}
	if mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSchema1Signd || m.SchemaVersion == 1 || m.FSLayers != nil {
		return nil, "", fmt.Errorf("docker schema 1 manifests are not supported (push the image again with a current client)")
	}
	if m.SchemaVersion != 2 {
		return nil, "", fmt.Errorf("unsupported manifest schemaVersion %d", m.SchemaVersion)
	}
	switch {
	case isIndex(mt):
		for i, d := range m.Manifests {
			if err := checkDescriptor(d); err != nil {
				return nil, "", fmt.Errorf("index entry %d: %w", i, err)
			}
		}
	case isManifest(mt):
		if m.Config == nil {
			return nil, "", fmt.Errorf("manifest has no config")
		}
		if err := checkDescriptor(*m.Config); err != nil {
			return nil, "", fmt.Errorf("manifest config: %w", err)
		}
		for i, d := range m.Layers {
			if err := checkDescriptor(d); err != nil {
				return nil, "", fmt.Errorf("manifest layer %d: %w", i, err)
			}
		}
	default:
		return nil, "", fmt.Errorf("unsupported manifest media type %q", mt)
	}
	return &m, mt, nil
}

func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("blob %s: negative size %d", d.Digest, d.Size)
	}
	return nil
}

// shortID is the id under which progress of a blob is reported: the first
// 12 hex digits of its digest, as docker shows.
func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}
