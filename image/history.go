package image

import (
	"context"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// HistoryEntry is one line of docker history.
type HistoryEntry struct {
	// ID is the image whose top this entry is (the image itself, or a
	// local parent it was committed on), or "<missing>".
	ID        string
	Created   time.Time
	CreatedBy string
	Tags      []string
	// Size is the unpacked size of the layer the entry made (0 for an
	// entry that made none; the compressed size if not unpacked yet).
	Size    int64
	Comment string
}

// History returns the image's history, newest first, as docker history
// shows it.
func (s *Service) History(ctx context.Context, ref string) ([]HistoryEntry, error) {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	var sizes map[string]int64
	// Parents committed locally: ID and tags at the entry that was their top.
	type top struct {
		id   string
		tags []string
	}
	tops := map[int]top{}
	err = s.view(ctx, func(tx *bolt.Tx) error {
		sizes = layerSizes(tx)
		for p := img.Parent; p != ""; {
			pimg, err := s.imageTx(tx, p)
			if err != nil {
				break
			}
			if n := len(pimg.Config.History); n > 0 {
				tops[n-1] = top{pimg.ID, pimg.RepoTags}
			}
			p = pimg.Parent
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	hist := img.Config.History
	if len(hist) == 0 {
		// No history: one entry per layer.
		for range img.Layers {
			hist = append(hist, v1.History{Created: img.Config.Created})
		}
		if len(hist) == 0 {
			hist = []v1.History{{Created: img.Config.Created, EmptyLayer: true}}
		}
	}
	layer := 0
	out := make([]HistoryEntry, len(hist))
	for i, h := range hist {
		e := HistoryEntry{ID: "<missing>", Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment}
		if !h.EmptyLayer && layer < len(img.Layers) {
			if n, ok := sizes[img.ChainIDs[layer].String()]; ok {
				e.Size = n
			} else {
				e.Size = img.Layers[layer].Size
			}
			layer++
		}
		if t, ok := tops[i]; ok {
			e.ID, e.Tags = t.id, t.tags
		}
		out[len(hist)-1-i] = e
	}
	out[0].ID, out[0].Tags = img.ID, img.RepoTags
	return out, nil
}
