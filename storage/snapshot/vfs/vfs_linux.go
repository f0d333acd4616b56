// Package vfs is berth's copying snapshotter, for filesystems where
// overlayfs cannot be used (or as a reference the overlay driver is
// checked against).
//
// Every active snapshot is a full copy of its parent's tree (modes,
// owners, xattrs, hard links, device nodes and times kept; a reflink
// where the filesystem supports it). Layers are applied into that merged
// tree with plain removals for whiteouts, and Diff compares the tree with
// its parent's (archive.WriteDiff). A view is a read-only bind mount of its
// parent's tree, not a copy.
//
// Layout of the root directory given to New:
//
//	metadata.db, lock   the shared bookkeeping (storage/snapshot/internal/store)
//	snapshots/<id>/fs   the snapshot's full tree
//	empty               an empty directory: the parent tree of a base layer's Diff
//
// This package imports storage/snapshot, its internal store and
// storage/archive only.
package vfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/internal/store"
)

// Snapshotter is the copying snapshotter. It implements
// snapshot.Snapshotter.
type Snapshotter struct {
	st *store.Store
}

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// New opens (creating if needed) the vfs snapshotter rooted at root and
// cleans up what crashed operations left there.
func New(root string) (*Snapshotter, error) {
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(st.Root(), "empty"), 0o700); err != nil {
		return nil, fmt.Errorf("create vfs root: %w", err)
	}
	s := &Snapshotter{st: st}
	if err := s.Cleanup(); err != nil {
		return nil, err
	}
	return s, nil
}

// Cleanup removes what crashed operations left behind.
func (s *Snapshotter) Cleanup() error { return s.st.Cleanup(nil) }

func checkKey(key string) error {
	if key == "" || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid snapshot key %q", key)
	}
	return nil
}

func (s *Snapshotter) fs(id string) string { return filepath.Join(s.st.Dir(id), "fs") }

// Stat returns the snapshot key's Info.
func (s *Snapshotter) Stat(key string) (snapshot.Info, error) {
	r, err := s.get(key)
	return r.Info(), err
}

func (s *Snapshotter) get(key string) (store.Record, error) {
	var r store.Record
	err := s.st.View(func(tx *store.Tx) (err error) {
		r, err = tx.Get(key)
		return err
	})
	return r, err
}

// Prepare makes the active snapshot key, a copy of parent's tree.
func (s *Snapshotter) Prepare(key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	return s.create(snapshot.KindActive, key, parent, labels)
}

// View makes the read-only snapshot key of parent.
func (s *Snapshotter) View(key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	return s.create(snapshot.KindView, key, parent, labels)
}

func (s *Snapshotter) create(kind snapshot.Kind, key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	// Fail early, before copying, when the key is taken or the parent
	// is unusable; the transaction below checks again.
	var parentID string
	if err := s.st.View(func(tx *store.Tx) error {
		if tx.Exists(key) {
			return fmt.Errorf("snapshot %q: %w", key, snapshot.ErrExists)
		}
		chain, err := tx.ParentChain(parent)
		if err != nil {
			return fmt.Errorf("snapshot %q: %w", key, err)
		}
		if len(chain) > 0 {
			parentID = chain[0].ID
		}
		return nil
	}); err != nil {
		return nil, err
	}
	tmp, err := s.st.NewTemp()
	if err != nil {
		return nil, err
	}
	defer tmp.Close()
	fs := filepath.Join(tmp.Path, "fs")
	if kind == snapshot.KindActive && parentID != "" {
		err = copyTree(s.fs(parentID), fs)
	} else {
		err = os.Mkdir(fs, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	store.Crash("populated")
	var mounts []snapshot.Mount
	err = s.st.Update(func(tx *store.Tx) error {
		if tx.Exists(key) {
			return fmt.Errorf("snapshot %q: %w", key, snapshot.ErrExists)
		}
		chain, err := tx.ParentChain(parent)
		if err != nil {
			return fmt.Errorf("snapshot %q: %w", key, err)
		}
		if len(chain) > 0 && chain[0].ID != parentID {
			return fmt.Errorf("snapshot %q: parent %q was replaced while it was copied", key, parent)
		}
		r := store.Record{Key: key, ID: store.NewID(16), Parent: parent, Kind: kind, Labels: labels, Created: time.Now().UTC()}
		if err := tx.Put(r); err != nil {
			return err
		}
		if err := tmp.Place(tx, r.ID); err != nil {
			return err
		}
		mounts = s.mounts(r, chain)
		return nil
	})
	if err != nil {
		return nil, err
	}
	store.Crash("prepared")
	return mounts, nil
}

// mounts returns the mounts of r, whose parent chain is parents: a view
// is its parent's tree (or its own empty one), read-only.
func (s *Snapshotter) mounts(r store.Record, parents []store.Record) []snapshot.Mount {
	if r.Kind == snapshot.KindView {
		src := s.fs(r.ID)
		if len(parents) > 0 {
			src = s.fs(parents[0].ID)
		}
		return []snapshot.Mount{{Type: "bind", Source: src, Options: []string{"bind", "ro"}}}
	}
	return []snapshot.Mount{{Type: "bind", Source: s.fs(r.ID), Options: []string{"bind", "rw"}}}
}

// Mounts returns the mounts of the active snapshot or view key.
func (s *Snapshotter) Mounts(key string) ([]snapshot.Mount, error) {
	var mounts []snapshot.Mount
	err := s.st.View(func(tx *store.Tx) error {
		chain, err := tx.Chain(key)
		if err != nil {
			return err
		}
		if chain[0].Kind == snapshot.KindCommitted {
			return fmt.Errorf("snapshot %q is committed: make a view or an active snapshot of it to mount it", key)
		}
		mounts = s.mounts(chain[0], chain[1:])
		return nil
	})
	return mounts, err
}

// Commit turns the active snapshot key into the committed snapshot name.
func (s *Snapshotter) Commit(name, key string, labels map[string]string) error {
	if err := checkKey(name); err != nil {
		return err
	}
	return s.st.Update(func(tx *store.Tx) error {
		r, err := tx.Get(key)
		if err != nil {
			return err
		}
		if r.Kind != snapshot.KindActive {
			return fmt.Errorf("commit %q: it is a %s snapshot, not active", key, r.Kind)
		}
		if tx.Exists(name) {
			return fmt.Errorf("commit %q as %q: %w", key, name, snapshot.ErrExists)
		}
		if _, err := tx.Delete(key); err != nil {
			return err
		}
		r.Key, r.Kind, r.Labels, r.Created = name, snapshot.KindCommitted, labels, time.Now().UTC()
		if err := tx.Put(r); err != nil {
			return err
		}
		store.Crash("commit-recorded")
		return nil
	})
}

// Remove deletes the snapshot key; it fails with ErrInUse while key has
// children (views included). An active snapshot must be unmounted first.
func (s *Snapshotter) Remove(key string) error {
	var del func()
	err := s.st.Update(func(tx *store.Tx) error {
		r, err := tx.Delete(key)
		if err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		tx.OnCommit(func() { del = s.st.Forget(r.ID) })
		return nil
	})
	if err != nil {
		return err
	}
	store.Crash("removed")
	del()
	return nil
}

// Walk calls fn for every snapshot (the store is not locked meanwhile).
func (s *Snapshotter) Walk(fn func(snapshot.Info) error) error {
	var recs []store.Record
	if err := s.st.View(func(tx *store.Tx) (err error) {
		recs, err = tx.All()
		return err
	}); err != nil {
		return err
	}
	for _, r := range recs {
		if err := fn(r.Info()); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns the disk use of key's whole tree (each vfs snapshot is a
// full copy).
func (s *Snapshotter) Usage(key string) (snapshot.Usage, error) {
	r, err := s.get(key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	return store.DiskUsage(s.fs(r.ID))
}

// ApplyDir returns the tree of the active snapshot key; whiteouts are
// applied to it as removals.
func (s *Snapshotter) ApplyDir(key string) (string, bool, error) {
	r, err := s.get(key)
	if err != nil {
		return "", false, err
	}
	if r.Kind != snapshot.KindActive {
		return "", false, fmt.Errorf("apply into %q: it is a %s snapshot, not active", key, r.Kind)
	}
	return s.fs(r.ID), false, nil
}

// Diff writes the changes of the active (or committed) snapshot key
// against its parent's tree as an OCI layer tar.
func (s *Snapshotter) Diff(key string, w io.Writer) error {
	var r store.Record
	lower := filepath.Join(s.st.Root(), "empty")
	err := s.st.View(func(tx *store.Tx) error {
		chain, err := tx.Chain(key)
		if err != nil {
			return err
		}
		r = chain[0]
		if len(chain) > 1 {
			lower = s.fs(chain[1].ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if r.Kind == snapshot.KindView {
		return fmt.Errorf("diff %q: a view has no changes", key)
	}
	return archive.WriteDiff(w, lower, s.fs(r.ID), archive.DiffOptions{})
}

// Close releases the store (the database is only open during operations).
func (s *Snapshotter) Close() error { return nil }
