// Package overlay is berth's overlayfs snapshotter.
//
// Layout of the root directory given to New:
//
//	metadata.db, lock       the shared bookkeeping (storage/snapshot/internal/store)
//	snapshots/<id>/fs       the snapshot's tree: a layer, or an upper directory
//	snapshots/<id>/work     overlayfs' work directory (active snapshots)
//	l/<link>                -> ../snapshots/<id>/fs, for each committed snapshot
//
// A committed snapshot is a lower layer; an active one is an upper
// directory over its parent's chain. The lowerdir option names each layer
// by its short l/ link (10 characters), as Docker's overlay2 does, so that
// the Mount values this driver returns stay compact and readable.
//
// Long chains: mount(2) takes at most one page of options, which a chain
// of 128 layers under a long root path exceeds even with short names.
// snapshot.MountAll therefore mounts overlays with the new mount API
// (fsopen/fsconfig/fsmount/move_mount) and appends the layers one by one
// as "lowerdir+" parameters (Linux 6.8+), which has no total limit and
// needs neither a chdir (process-wide, unsafe in a multithreaded Go
// program) nor a helper process, unlike Docker's chdir trick. Paths longer
// than fsconfig's 256-byte limit are passed through /proc/self/fd.
//
// Mounts are mounted with index=off, redirect_dir=off and metacopy=off so
// that an upper directory is a plain layer diff that Diff
// (archive.WriteOverlayDiff) can read and that stays valid on top of any
// copy of its lowers.
//
// This package imports storage/snapshot, its internal store and
// storage/archive only.
package overlay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/internal/store"
)

// Snapshotter is the overlayfs snapshotter. It implements
// snapshot.Snapshotter.
type Snapshotter struct {
	st *store.Store
}

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// New opens (creating if needed) the overlay snapshotter rooted at root
// and cleans up what crashed operations left there.
func New(root string) (*Snapshotter, error) {
	if strings.ContainsAny(root, ":,\x00") {
		return nil, fmt.Errorf("overlay snapshot root %q: must not contain ':' or ',' (they separate overlay mount options)", root)
	}
	if err := supported(); err != nil {
		return nil, err
	}
	st, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(st.Root(), "l"), 0o700); err != nil {
		return nil, fmt.Errorf("create overlay link directory: %w", err)
	}
	s := &Snapshotter{st: st}
	if err := s.Cleanup(); err != nil {
		return nil, err
	}
	return s, nil
}

func supported() error {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("overlay: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(l, "nodev")) == "overlay" {
			return nil
		}
	}
	// The module may load on first use.
	if _, err := os.Stat("/sys/module/overlay"); err == nil {
		return nil
	}
	return errors.New("overlay: the kernel has no overlayfs (modprobe overlay, or use the vfs driver)")
}

// Cleanup removes what crashed operations left behind: unrecorded
// snapshot directories, abandoned temporary ones, and l/ links no
// snapshot uses.
func (s *Snapshotter) Cleanup() error {
	return s.st.Cleanup(func(recs []store.Record) ([]string, error) {
		used := map[string]bool{}
		for _, r := range recs {
			if r.Link != "" {
				used[r.Link] = true
			}
		}
		ld := filepath.Join(s.st.Root(), "l")
		ents, err := os.ReadDir(ld)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", ld, err)
		}
		var unused []string
		for _, e := range ents {
			if !used[e.Name()] {
				unused = append(unused, filepath.Join(ld, e.Name()))
			}
		}
		return unused, nil
	})
}

func checkKey(key string) error {
	if key == "" || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid snapshot key %q", key)
	}
	return nil
}

func (s *Snapshotter) fs(id string) string { return filepath.Join(s.st.Dir(id), "fs") }

// Stat returns the snapshot key's Info.
func (s *Snapshotter) Stat(key string) (snapshot.Info, error) {
	var info snapshot.Info
	err := s.st.View(func(tx *store.Tx) error {
		r, err := tx.Get(key)
		info = r.Info()
		return err
	})
	return info, err
}

// Prepare makes the active snapshot key on top of parent.
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
	tmp, err := s.st.NewTemp()
	if err != nil {
		return nil, err
	}
	defer tmp.Close()
	if err := os.Mkdir(filepath.Join(tmp.Path, "fs"), 0o755); err != nil {
		return nil, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	if kind == snapshot.KindActive && parent != "" {
		if err := os.Mkdir(filepath.Join(tmp.Path, "work"), 0o700); err != nil {
			return nil, fmt.Errorf("create snapshot %q: %w", key, err)
		}
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
		if kind == snapshot.KindActive && len(chain) > 0 {
			// The container's root directory is the upper's: give it
			// the owner and mode of the parent's.
			if err := copyRootMeta(s.fs(chain[0].ID), filepath.Join(tmp.Path, "fs")); err != nil {
				return fmt.Errorf("snapshot %q: %w", key, err)
			}
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

func copyRootMeta(from, to string) error {
	var st unix.Stat_t
	if err := unix.Stat(from, &st); err != nil {
		return fmt.Errorf("stat %s: %w", from, err)
	}
	if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(to, st.Mode&0o7777)
}

// mounts returns the mounts of r, whose parent chain (nearest first) is
// lowers.
func (s *Snapshotter) mounts(r store.Record, lowers []store.Record) []snapshot.Mount {
	switch {
	case len(lowers) == 0:
		opt := "rw"
		if r.Kind == snapshot.KindView {
			opt = "ro"
		}
		return []snapshot.Mount{{Type: "bind", Source: s.fs(r.ID), Options: []string{"bind", opt}}}
	case r.Kind == snapshot.KindView && len(lowers) == 1:
		return []snapshot.Mount{{Type: "bind", Source: s.fs(lowers[0].ID), Options: []string{"bind", "ro"}}}
	}
	links := make([]string, len(lowers))
	for i, l := range lowers {
		links[i] = filepath.Join(s.st.Root(), "l", l.Link)
	}
	opts := []string{"index=off", "redirect_dir=off", "metacopy=off"}
	if r.Kind == snapshot.KindView {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "upperdir="+s.fs(r.ID), "workdir="+filepath.Join(s.st.Dir(r.ID), "work"))
	}
	opts = append(opts, "lowerdir="+strings.Join(links, ":"))
	return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
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
		link, err := s.link(r.ID)
		if err != nil {
			return fmt.Errorf("commit %q: %w", key, err)
		}
		tx.OnRollback(func() { os.Remove(filepath.Join(s.st.Root(), "l", link)) })
		r.Key, r.Kind, r.Labels, r.Link, r.Created = name, snapshot.KindCommitted, labels, link, time.Now().UTC()
		if err := tx.Put(r); err != nil {
			return err
		}
		store.Crash("commit-recorded")
		return nil
	})
}

// link makes a new short l/ link to the tree of snapshot id.
func (s *Snapshotter) link(id string) (string, error) {
	for range 10 {
		name := store.NewID(10)
		err := os.Symlink(filepath.Join("..", "snapshots", id, "fs"), filepath.Join(s.st.Root(), "l", name))
		if err == nil {
			return name, nil
		}
		if !os.IsExist(err) {
			return "", fmt.Errorf("link layer: %w", err)
		}
	}
	return "", errors.New("link layer: no free short name")
}

// Remove deletes the snapshot key; it fails with ErrInUse while key has
// children. An active snapshot must be unmounted first.
func (s *Snapshotter) Remove(key string) error {
	var del func()
	err := s.st.Update(func(tx *store.Tx) error {
		r, err := tx.Delete(key)
		if err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		tx.OnCommit(func() {
			if r.Link != "" {
				os.Remove(filepath.Join(s.st.Root(), "l", r.Link))
			}
			del = s.st.Forget(r.ID)
		})
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

func (s *Snapshotter) get(key string) (store.Record, error) {
	var r store.Record
	err := s.st.View(func(tx *store.Tx) (err error) {
		r, err = tx.Get(key)
		return err
	})
	return r, err
}

// Usage returns the disk use of key's own tree (its upper directory or
// layer, not its parents').
func (s *Snapshotter) Usage(key string) (snapshot.Usage, error) {
	r, err := s.get(key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	return store.DiskUsage(s.fs(r.ID))
}

// ApplyDir returns the upper directory of the active snapshot key, which
// takes overlayfs whiteouts.
func (s *Snapshotter) ApplyDir(key string) (string, bool, error) {
	r, err := s.get(key)
	if err != nil {
		return "", false, err
	}
	if r.Kind != snapshot.KindActive {
		return "", false, fmt.Errorf("apply into %q: it is a %s snapshot, not active", key, r.Kind)
	}
	return s.fs(r.ID), true, nil
}

// Diff writes the changes of the active (or committed) snapshot key
// against its parent: its upper directory, as an OCI layer tar.
func (s *Snapshotter) Diff(key string, w io.Writer) error {
	r, err := s.get(key)
	if err != nil {
		return err
	}
	if r.Kind == snapshot.KindView {
		return fmt.Errorf("diff %q: a view has no changes", key)
	}
	return archive.WriteOverlayDiff(w, s.fs(r.ID), archive.DiffOptions{})
}

// Close releases the store (the database is only open during operations).
func (s *Snapshotter) Close() error { return nil }
