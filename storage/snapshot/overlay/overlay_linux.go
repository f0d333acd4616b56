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
// directory over its parent's chain (so Usage, the disk use of
// snapshots/<id>/fs, counts that layer or upper directory alone). The
// lowerdir option names each layer by its short l/ link (10 characters),
// as Docker's overlay2 does, so that the Mount values this driver returns
// stay compact and readable.
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

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/internal/store"
)

// Snapshotter is the overlayfs snapshotter. It implements
// snapshot.Snapshotter; Stat, Mounts, Commit, Remove, Walk, Usage and
// Close are the shared store.Snapshots'.
type Snapshotter struct {
	store.Snapshots
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
	s.Snapshots = store.NewSnapshots(st, store.Layout{Mounts: s.mounts, Link: s.link, Unlink: s.unlink})
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

// Prepare makes the active snapshot key on top of parent.
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
	r, chain, err := s.st.Add(tmp, store.Record{Key: key, Parent: parent, Kind: kind, Labels: labels}, func(chain []store.Record) error {
		if kind == snapshot.KindActive && len(chain) > 0 {
			// The container's root directory is the upper's: give it
			// the owner and mode of the parent's.
			return copyRootMeta(s.st.FS(chain[0].ID), filepath.Join(tmp.Path, "fs"))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.mounts(r, chain), nil
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
		return []snapshot.Mount{{Type: "bind", Source: s.st.FS(r.ID), Options: []string{"bind", opt}}}
	case r.Kind == snapshot.KindView && len(lowers) == 1:
		return []snapshot.Mount{{Type: "bind", Source: s.st.FS(lowers[0].ID), Options: []string{"bind", "ro"}}}
	}
	links := make([]string, len(lowers))
	for i, l := range lowers {
		links[i] = filepath.Join(s.st.Root(), "l", l.Link)
	}
	opts := []string{"index=off", "redirect_dir=off", "metacopy=off"}
	if r.Kind == snapshot.KindView {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "upperdir="+s.st.FS(r.ID), "workdir="+filepath.Join(s.st.Dir(r.ID), "work"))
	}
	opts = append(opts, "lowerdir="+strings.Join(links, ":"))
	return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
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

// unlink removes the l/ link name.
func (s *Snapshotter) unlink(name string) { os.Remove(filepath.Join(s.st.Root(), "l", name)) }

// ApplyDir returns the upper directory of the active snapshot key, which
// takes overlayfs whiteouts.
func (s *Snapshotter) ApplyDir(key string) (string, bool, error) {
	dir, err := s.st.ApplyDir(key)
	if err != nil {
		return "", false, err
	}
	return dir, true, nil
}

// Diff writes the changes of the active (or committed) snapshot key
// against its parent: its upper directory, as an OCI layer tar.
func (s *Snapshotter) Diff(key string, w io.Writer) error {
	r, err := s.st.Get(key)
	if err != nil {
		return err
	}
	if r.Kind == snapshot.KindView {
		return fmt.Errorf("diff %q: a view has no changes", key)
	}
	return archive.WriteOverlayDiff(w, s.st.FS(r.ID), archive.DiffOptions{})
}
