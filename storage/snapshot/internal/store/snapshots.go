package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-project/berth/storage/snapshot"
)

// Snapshots is the part of a snapshot.Snapshotter that is the same in
// every driver: the methods that only read or rewrite records (Stat,
// Mounts, Commit, Remove, Walk, Usage, Close). A driver embeds it and
// adds Prepare, View, ApplyDir, Diff and Cleanup, which depend on how it
// lays out and mounts its trees; Layout tells Snapshots the rest.
type Snapshots struct {
	st     *Store
	layout Layout
}

// Layout is what Snapshots needs to know of a driver.
type Layout struct {
	// Mounts returns the mounts of the active snapshot or view r, whose
	// parent chain (nearest first) is parents.
	Mounts func(r Record, parents []Record) []snapshot.Mount
	// Link, if set, gives the tree of the snapshot id a short name
	// (Record.Link) as it is committed; Unlink (set along with it)
	// removes such a name, when the commit fails or once the snapshot's
	// record is removed.
	Link   func(id string) (string, error)
	Unlink func(name string)
}

// NewSnapshots returns the shared methods over st for a driver laid out
// as l says.
func NewSnapshots(st *Store, l Layout) Snapshots { return Snapshots{st: st, layout: l} }

// CheckKey rejects a key no snapshot may have.
func CheckKey(key string) error {
	if key == "" || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid snapshot key %q", key)
	}
	return nil
}

// FS is the tree of the snapshot with the given id: the fs directory in
// its snapshot directory, in every driver's layout.
func (s *Store) FS(id string) string { return filepath.Join(s.Dir(id), "fs") }

// Get returns the record of key, read in a transaction of its own.
func (s *Store) Get(key string) (Record, error) {
	var r Record
	err := s.View(func(tx *Tx) (err error) {
		r, err = tx.Get(key)
		return err
	})
	return r, err
}

// Add records the new snapshot r (its Key, Parent, Kind and Labels set)
// on top of its parent, whose directory tmp holds (placed in the same
// transaction), and returns it with its ID and Created set and its
// parent's chain (nearest first). check, if not nil, vets that chain
// inside the transaction, before anything is written.
func (s *Store) Add(tmp *Temp, r Record, check func(chain []Record) error) (Record, []Record, error) {
	var chain []Record
	err := s.Update(func(tx *Tx) (err error) {
		if tx.Exists(r.Key) {
			return fmt.Errorf("snapshot %q: %w", r.Key, snapshot.ErrExists)
		}
		chain, err = tx.ParentChain(r.Parent)
		if err != nil {
			return fmt.Errorf("snapshot %q: %w", r.Key, err)
		}
		if check != nil {
			if err := check(chain); err != nil {
				return fmt.Errorf("snapshot %q: %w", r.Key, err)
			}
		}
		r.ID, r.Created = NewID(16), time.Now().UTC()
		if err := tx.Put(r); err != nil {
			return err
		}
		return tmp.Place(tx, r.ID)
	})
	if err != nil {
		return Record{}, nil, err
	}
	Crash("prepared")
	return r, chain, nil
}

// ApplyDir returns the tree of the active snapshot key.
func (s *Store) ApplyDir(key string) (string, error) {
	r, err := s.Get(key)
	if err != nil {
		return "", err
	}
	if r.Kind != snapshot.KindActive {
		return "", fmt.Errorf("apply into %q: it is a %s snapshot, not active", key, r.Kind)
	}
	return s.FS(r.ID), nil
}

// Stat returns the snapshot key's Info.
func (s *Snapshots) Stat(key string) (snapshot.Info, error) {
	r, err := s.st.Get(key)
	return r.Info(), err
}

// Mounts returns the mounts of the active snapshot or view key.
func (s *Snapshots) Mounts(key string) ([]snapshot.Mount, error) {
	var mounts []snapshot.Mount
	err := s.st.View(func(tx *Tx) error {
		chain, err := tx.Chain(key)
		if err != nil {
			return err
		}
		if chain[0].Kind == snapshot.KindCommitted {
			return fmt.Errorf("snapshot %q is committed: make a view or an active snapshot of it to mount it", key)
		}
		mounts = s.layout.Mounts(chain[0], chain[1:])
		return nil
	})
	return mounts, err
}

// Commit turns the active snapshot key into the committed snapshot name.
func (s *Snapshots) Commit(name, key string, labels map[string]string) error {
	if err := CheckKey(name); err != nil {
		return err
	}
	return s.st.Update(func(tx *Tx) error {
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
		if s.layout.Link != nil {
			link, err := s.layout.Link(r.ID)
			if err != nil {
				return fmt.Errorf("commit %q: %w", key, err)
			}
			tx.OnRollback(func() { s.layout.Unlink(link) })
			r.Link = link
		}
		r.Key, r.Kind, r.Labels, r.Created = name, snapshot.KindCommitted, labels, time.Now().UTC()
		if err := tx.Put(r); err != nil {
			return err
		}
		Crash("commit-recorded")
		return nil
	})
}

// Remove deletes the snapshot key; it fails with ErrInUse while key has
// children (views included). An active snapshot must be unmounted first.
func (s *Snapshots) Remove(key string) error {
	var del func()
	err := s.st.Update(func(tx *Tx) error {
		r, err := tx.Delete(key)
		if err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		tx.OnCommit(func() {
			if r.Link != "" && s.layout.Unlink != nil {
				s.layout.Unlink(r.Link)
			}
			del = s.st.Forget(r.ID)
		})
		return nil
	})
	if err != nil {
		return err
	}
	Crash("removed")
	del()
	return nil
}

// Walk calls fn for every snapshot (the store is not locked meanwhile).
func (s *Snapshots) Walk(fn func(snapshot.Info) error) error {
	var recs []Record
	if err := s.st.View(func(tx *Tx) (err error) {
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

// Usage returns the disk use of key's own tree (FS), not its parents':
// what that tree holds depends on the driver.
func (s *Snapshots) Usage(key string) (snapshot.Usage, error) {
	r, err := s.st.Get(key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	return DiskUsage(s.st.FS(r.ID))
}

// Close releases the store (the database is only open during operations).
func (s *Snapshots) Close() error { return nil }
