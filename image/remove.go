package image

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/reference"
	"github.com/berth-project/berth/storage/snapshot"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Tag gives the image src the name newRef (":latest" when it has no
// tag), taking it from any image that had it.
func (s *Service) Tag(ctx context.Context, src, newRef string) (*Image, error) {
	r, err := reference.ParseDocker(newRef)
	if err != nil {
		return nil, fmt.Errorf("%w: tag %q: %v", ErrInvalid, newRef, err)
	}
	if r.Digest != "" {
		return nil, fmt.Errorf("%w: tag %q: refusing to create a tag with a digest reference", ErrInvalid, newRef)
	}
	var img *Image
	err = s.update(ctx, func(tx *bolt.Tx) error {
		id, _, err := resolve(tx, src)
		if err != nil {
			return err
		}
		rec, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Bucket([]byte(bucketRefs)).Put([]byte(r.String()), []byte(id)); err != nil {
			return err
		}
		rec.LastTagTime = time.Now().UTC()
		if err := putRecord(tx, rec); err != nil {
			return err
		}
		img, err = s.imageTx(tx, id)
		return err
	})
	return img, err
}

// RemovedItem is one line of docker rmi's output: exactly one field is set.
type RemovedItem struct {
	Untagged string `json:"Untagged,omitempty"` // a familiar reference
	Deleted  string `json:"Deleted,omitempty"`  // an image ID, or a layer's chain ID
}

// Remove removes ref as docker rmi does. By name it untags that name, and
// deletes the image when no tag is left (its digest references of the same
// repository go with it). By ID it deletes the image with all its names,
// but refuses one referenced in several repositories unless force. An
// image a container uses is not deleted: without force that is an
// ErrConflict; with force its names go and the image stays, untagged,
// for the container. An image with children (committed on it) is never
// deleted by ID; untagged by name it stays as an intermediate image.
// Deleting an image deletes its untagged, childless parents too, then
// collects the blobs and layers no image uses (if no other berth process
// holds a lease; the next collection gets them otherwise).
func (s *Service) Remove(ctx context.Context, ref string, force bool) ([]RemovedItem, error) {
	var items []RemovedItem
	err := s.update(ctx, func(tx *bolt.Tx) error {
		items = nil
		id, byRef, err := resolve(tx, ref)
		if err != nil {
			return err
		}
		return s.removeTx(tx, id, byRef, force, ref, &items)
	})
	if err != nil {
		return nil, err
	}
	if hasDeleted(items) {
		if rep, err := s.collect(ctx, false); err == nil {
			for _, c := range rep.Snapshots {
				items = append(items, RemovedItem{Deleted: c})
			}
		}
	}
	return items, nil
}

func hasDeleted(items []RemovedItem) bool {
	for _, it := range items {
		if it.Deleted != "" {
			return true
		}
	}
	return false
}

func (s *Service) removeTx(tx *bolt.Tx, id, byRef string, force bool, asked string, items *[]RemovedItem) error {
	refsB := tx.Bucket([]byte(bucketRefs))
	refs := refsOf(tx, id)
	untag := func(r string) error {
		if err := refsB.Delete([]byte(r)); err != nil {
			return err
		}
		*items = append(*items, RemovedItem{Untagged: reference.Familiarize(r)})
		return nil
	}
	children := childrenOf(tx, id)
	short := strings.TrimPrefix(id, "sha256:")[:12]
	used := s.inUse(id)
	if byRef != "" {
		remaining := 0
		br, _ := reference.Parse(byRef)
		for _, r := range refs {
			if r == byRef {
				continue
			}
			pr, err := reference.Parse(r)
			if err != nil {
				continue
			}
			// Digest references of the same repository do not keep it.
			if pr.Digest != "" && pr.Name() == br.Name() {
				continue
			}
			remaining++
		}
		if remaining > 0 {
			if err := untag(byRef); err != nil {
				return err
			}
			// As docker rmi: the last tag of a repository takes that
			// repository's digest references with it.
			if br.Digest != "" {
				return nil
			}
			var digests []string
			for _, r := range refs {
				pr, err := reference.Parse(r)
				if err != nil || r == byRef || pr.Name() != br.Name() {
					continue
				}
				if pr.Digest == "" {
					return nil // another tag of the repository is left
				}
				digests = append(digests, r)
			}
			for _, r := range digests {
				if err := untag(r); err != nil {
					return err
				}
			}
			return nil
		}
		if used && !force {
			return fmt.Errorf("%w: unable to remove repository reference %q (must force) - a container is using its referenced image %s", ErrConflict, asked, short)
		}
		for _, r := range refs {
			if err := untag(r); err != nil {
				return err
			}
		}
		if used || len(children) > 0 {
			return nil
		}
		return s.deleteTx(tx, id, items)
	}
	if len(children) > 0 {
		return fmt.Errorf("%w: unable to delete %s (cannot be forced) - image has dependent child images", ErrConflict, short)
	}
	if used && !force {
		return fmt.Errorf("%w: unable to delete %s (must be forced) - image is being used by a container", ErrConflict, short)
	}
	if !force {
		repos := map[string]bool{}
		for _, r := range refs {
			if pr, err := reference.Parse(r); err == nil {
				repos[pr.Name()] = true
			}
		}
		if len(repos) > 1 {
			return fmt.Errorf("%w: unable to delete %s (must be forced) - image is referenced in multiple repositories", ErrConflict, short)
		}
	}
	for _, r := range refs {
		if err := untag(r); err != nil {
			return err
		}
	}
	if used {
		return nil
	}
	return s.deleteTx(tx, id, items)
}

func childrenOf(tx *bolt.Tx, id string) []string {
	recs, _ := allRecords(tx)
	var out []string
	for _, r := range recs {
		if r.Parent == id {
			out = append(out, r.ID)
		}
	}
	return out
}

// deleteTx deletes the untagged image id, then its parent if that is
// left untagged, childless and unused.
func (s *Service) deleteTx(tx *bolt.Tx, id string, items *[]RemovedItem) error {
	rec, err := getRecord(tx, id)
	if err != nil || rec == nil {
		return err
	}
	if err := tx.Bucket([]byte(bucketImages)).Delete([]byte(id)); err != nil {
		return err
	}
	*items = append(*items, RemovedItem{Deleted: id})
	p := rec.Parent
	if p == "" || len(refsOf(tx, p)) > 0 || len(childrenOf(tx, p)) > 0 || s.inUse(p) {
		return nil
	}
	return s.deleteTx(tx, p, items)
}

// PruneReport is what Prune removed.
type PruneReport struct {
	Items          []RemovedItem
	SpaceReclaimed int64
}

// Prune deletes dangling images (untagged, without children), or with all
// every image no container uses, then collects unreferenced blobs and
// layers (waiting for leases to end), and stale ingests older than a day.
func (s *Service) Prune(ctx context.Context, all bool) (*PruneReport, error) {
	rep := &PruneReport{}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		rep.Items = nil
		for {
			recs, err := allRecords(tx)
			if err != nil {
				return err
			}
			progress := false
			sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
			for _, r := range recs {
				if s.inUse(r.ID) || len(childrenOf(tx, r.ID)) > 0 {
					continue
				}
				refs := refsOf(tx, r.ID)
				hasTag := false
				for _, ref := range refs {
					if pr, err := reference.Parse(ref); err == nil && pr.Tag != "" {
						hasTag = true
					}
				}
				if hasTag && !all {
					continue
				}
				for _, ref := range refs {
					if err := tx.Bucket([]byte(bucketRefs)).Delete([]byte(ref)); err != nil {
						return err
					}
					rep.Items = append(rep.Items, RemovedItem{Untagged: reference.Familiarize(ref)})
				}
				if err := tx.Bucket([]byte(bucketImages)).Delete([]byte(r.ID)); err != nil {
					return err
				}
				rep.Items = append(rep.Items, RemovedItem{Deleted: r.ID})
				progress = true
			}
			if !progress {
				return nil
			}
		}
	})
	if err != nil {
		return nil, err
	}
	gc, err := s.collect(ctx, true)
	if err != nil {
		return rep, err
	}
	for _, c := range gc.Snapshots {
		rep.Items = append(rep.Items, RemovedItem{Deleted: c})
	}
	rep.SpaceReclaimed = gc.Bytes
	s.content.PruneIngests(ctx, 24*time.Hour)
	return rep, nil
}

// GCReport is what a collection removed.
type GCReport struct {
	Blobs     []digest.Digest
	Snapshots []string // chain IDs of removed layers
	Bytes     int64    // blob bytes plus unpacked layer bytes freed
}

// GC removes the blobs and layer snapshots no image references, and
// snapshots half-made by killed unpacks. It waits for leases to end.
func (s *Service) GC(ctx context.Context) (*GCReport, error) {
	return s.collect(ctx, true)
}

func (s *Service) collect(ctx context.Context, wait bool) (*GCReport, error) {
	lock, err := lockExclusive(ctx, s.gcLock, s.opts.LockTimeout, wait)
	if err != nil {
		return nil, fmt.Errorf("garbage collection: %w", err)
	}
	if lock == nil {
		return nil, errors.New("garbage collection: a lease is held")
	}
	defer lock.Close()
	blobs := map[digest.Digest]bool{}
	chains := map[string]bool{}
	if err := s.view(ctx, func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			blobs[r.Manifest.Digest] = true
			blobs[r.ConfigDesc.Digest] = true
			if r.Index != nil {
				blobs[r.Index.Digest] = true
			}
			for _, l := range r.Layers {
				blobs[l.Digest] = true
			}
			for _, c := range ChainIDs(r.DiffIDs) {
				chains[c.String()] = true
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	rep := &GCReport{}
	var dead []content.Info
	if err := s.content.Walk(ctx, func(i content.Info) error {
		if !blobs[i.Digest] {
			dead = append(dead, i)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, i := range dead {
		if err := s.content.Delete(ctx, i.Digest); err == nil {
			rep.Blobs = append(rep.Blobs, i.Digest)
			rep.Bytes += i.Size
		}
	}
	if s.sn != nil {
		if err := s.collectSnapshots(chains, rep); err != nil {
			return rep, err
		}
	}
	if len(rep.Snapshots) > 0 {
		err := s.update(ctx, func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(bucketLayers))
			for _, c := range rep.Snapshots {
				if !s.committed(c) {
					b.Delete([]byte(c))
				}
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// collectSnapshots removes unreferenced layer snapshots (chain-ID keys)
// children first; one a container's snapshot still sits on stays.
func (s *Service) collectSnapshots(chains map[string]bool, rep *GCReport) error {
	var infos []snapshot.Info
	if err := s.sn.Walk(func(i snapshot.Info) error {
		infos = append(infos, i)
		return nil
	}); err != nil {
		return fmt.Errorf("garbage collection: walk snapshots: %w", err)
	}
	var cands []snapshot.Info
	for _, i := range infos {
		switch {
		case isUnpackKey(i.Key):
			// No unpack runs while we hold the lock: this one was killed.
			s.sn.Remove(i.Key)
		case i.Kind == snapshot.KindCommitted && strings.HasPrefix(i.Key, "sha256:") && !chains[i.Key]:
			cands = append(cands, i)
		}
	}
	for progress := true; progress && len(cands) > 0; {
		progress = false
		var left []snapshot.Info
		for _, c := range cands {
			u, _ := s.sn.Usage(c.Key)
			if err := s.sn.Remove(c.Key); err != nil {
				left = append(left, c)
				continue
			}
			progress = true
			rep.Snapshots = append(rep.Snapshots, c.Key)
			rep.Bytes += u.Size
		}
		cands = left
	}
	return nil
}

// ImageUsage is one image in DiskUsage.
type ImageUsage struct {
	ID         string
	RepoTags   []string
	Created    time.Time
	Size       int64 // all its layers
	SharedSize int64 // layers other images use too
	UniqueSize int64 // layers only it uses
	InUse      bool  // a container uses it
}

// DiskUsage is what docker system df reports about images.
type DiskUsage struct {
	Images     []ImageUsage
	LayersSize int64 // every layer once
	BlobsSize  int64 // the content store's blobs
}

// DiskUsage reports the space images take.
func (s *Service) DiskUsage(ctx context.Context) (*DiskUsage, error) {
	imgs, err := s.List(ctx, ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	du := &DiskUsage{}
	var sizes map[string]int64
	if err := s.view(ctx, func(tx *bolt.Tx) error { sizes = layerSizes(tx); return nil }); err != nil {
		return nil, err
	}
	users := map[string]int{}
	layerSize := map[string]int64{}
	for _, img := range imgs {
		for i, c := range img.ChainIDs {
			users[c.String()]++
			if n, ok := sizes[c.String()]; ok {
				layerSize[c.String()] = n
			} else {
				layerSize[c.String()] = img.Layers[i].Size
			}
		}
	}
	for _, n := range layerSize {
		du.LayersSize += n
	}
	for _, img := range imgs {
		u := ImageUsage{ID: img.ID, RepoTags: img.RepoTags, Created: img.Created, InUse: s.inUse(img.ID)}
		seen := map[string]bool{}
		for _, c := range img.ChainIDs {
			if seen[c.String()] {
				continue
			}
			seen[c.String()] = true
			n := layerSize[c.String()]
			u.Size += n
			if users[c.String()] > 1 {
				u.SharedSize += n
			} else {
				u.UniqueSize += n
			}
		}
		du.Images = append(du.Images, u)
	}
	err = s.content.Walk(ctx, func(i content.Info) error {
		du.BlobsSize += i.Size
		return nil
	})
	return du, err
}
