// Package vfs is berth's copying snapshotter, for filesystems where
// overlayfs cannot be used (or as a reference the overlay driver is
// checked against).
//
// Every active snapshot is a full copy of its parent's tree (modes,
// owners, xattrs, hard links, device nodes and times kept; a reflink
// where the filesystem supports it), and Usage counts all of it. Layers
// are applied into that merged tree with plain removals for whiteouts, and
// Diff compares the tree with its parent's (archive.WriteDiff). A view is
// a read-only bind mount of its parent's tree, not a copy.
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

	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/internal/store"
)

// Snapshotter is the copying snapshotter. It implements
// snapshot.Snapshotter; Stat, Mounts, Commit, Remove, Walk, Usage and
// Close are the shared store.Snapshots'.
type Snapshotter struct {
	store.Snapshots
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
	s.Snapshots = store.NewSnapshots(st, store.Layout{Mounts: s.mounts})
	if err := s.Cleanup(); err != nil {
		return nil, err
	}
	return s, nil
}

// Cleanup removes what crashed operations left behind.
func (s *Snapshotter) Cleanup() error { return s.st.Cleanup(nil) }

// Prepare makes the active snapshot key, a copy of parent's tree.
func (s *Snapshotter) Prepare(key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	return s.create(snapshot.KindActive, key, parent, labels)
}

// View makes the read-only snapshot key of parent.
func (s *Snapshotter) View(key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	return s.create(snapshot.KindView, key, parent, labels)
}

func (s *Snapshotter) create(kind snapshot.Kind, key, parent string, labels map[string]string) ([]snapshot.Mount, error) {
	if err := store.CheckKey(key); err != nil {
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
		err = copyTree(s.st.FS(parentID), fs)
	} else {
		err = os.Mkdir(fs, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	store.Crash("populated")
	r, chain, err := s.st.Add(tmp, store.Record{Key: key, Parent: parent, Kind: kind, Labels: labels}, func(chain []store.Record) error {
		if len(chain) > 0 && chain[0].ID != parentID {
			return fmt.Errorf("parent %q was replaced while it was copied", parent)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.mounts(r, chain), nil
}

// mounts returns the mounts of r, whose parent chain is parents: a view
// is its parent's tree (or its own empty one), read-only.
func (s *Snapshotter) mounts(r store.Record, parents []store.Record) []snapshot.Mount {
	if r.Kind == snapshot.KindView {
		src := s.st.FS(r.ID)
		if len(parents) > 0 {
			src = s.st.FS(parents[0].ID)
		}
		return []snapshot.Mount{{Type: "bind", Source: src, Options: []string{"bind", "ro"}}}
	}
	return []snapshot.Mount{{Type: "bind", Source: s.st.FS(r.ID), Options: []string{"bind", "rw"}}}
}

// ApplyDir returns the tree of the active snapshot key; whiteouts are
// applied to it as removals.
func (s *Snapshotter) ApplyDir(key string) (string, bool, error) {
	dir, err := s.st.ApplyDir(key)
	return dir, false, err
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
			lower = s.st.FS(chain[1].ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if r.Kind == snapshot.KindView {
		return fmt.Errorf("diff %q: a view has no changes", key)
	}
	return archive.WriteDiff(w, lower, s.st.FS(r.ID), archive.DiffOptions{})
}
