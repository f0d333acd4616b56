package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
)

// withRootfs calls fn with the container's root filesystem mounted (the
// live mount of a running container, or a temporary one of a stopped
// container's snapshot).
//
// A container with its own user namespace (--userns auto) shows its files
// through ID mappings: its running root filesystem, volumes and binds
// hold host IDs, which fn must map (idMap gives the mapping for a root);
// a temporary mount of a stopped one shows the stored container IDs.
func (e *Engine) withRootfs(c *Container, fn func(rootfs string) error) error {
	if c.State.Running() {
		return fn(e.rootfsDir(c.ID))
	}
	unlock, err := e.lock(c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	dir, err := e.tempMountDir()
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	mounts, err := e.snap.Mounts(c.Snapshot)
	if err != nil {
		return err
	}
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return err
	}
	defer snapshot.UnmountAll(dir)
	return fn(dir)
}

// idMap returns the ID mapping between the tar and the files under root
// (the rootfs withRootfs gave, or a volume or bind from
// resolveInContainer): nil where files hold the container's own IDs.
func (c *Container) idMap(root, rootfs string) *archive.IDMap {
	if c.IDMap == nil || (root == rootfs && !c.State.Running()) {
		return nil
	}
	return c.IDMap
}

// resolveInContainer maps a path of the container to the root it lives
// under on the host (the root filesystem, or a volume or bind mounted
// there) and the path below that root.
func resolveInContainer(c *Container, rootfs, p string) (root, rel string) {
	p = path.Clean("/" + p)
	best := -1
	root, rel = rootfs, p
	for _, m := range c.Mounts {
		if m.Type == "tmpfs" {
			continue
		}
		d := m.Destination
		if (p == d || strings.HasPrefix(p, d+"/")) && len(d) > best {
			best = len(d)
			root, rel = m.Source, "/"+strings.TrimPrefix(strings.TrimPrefix(p, d), "/")
		}
	}
	return root, rel
}

// CopyFrom writes a tar of the container's path p (the entry and what is
// under it, named as) to w. Symlinks inside the container are resolved
// inside it: they can never lead the copy to host files (CVE-2018-15664).
func (e *Engine) CopyFrom(ctx context.Context, ref, p, as string, w io.Writer) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	return e.withRootfs(c, func(rootfs string) error {
		root, rel := resolveInContainer(c, rootfs, p)
		dir, base := path.Split(rel)
		if base == "" || base == "." {
			// The root itself (or "dir/."): its contents.
			d, err := openInRoot(root, rel)
			if err != nil {
				return fmt.Errorf("could not find the file %s in container %s: %w", p, c.Name, err)
			}
			defer d.Close()
			return archive.WriteTree(w, d, archive.DiffOptions{IDMap: c.idMap(root, rootfs)})
		}
		parent, err := openInRoot(root, dir)
		if err != nil {
			return fmt.Errorf("could not find the file %s in container %s: %w", p, c.Name, err)
		}
		defer parent.Close()
		var st unix.Stat_t
		if err := unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("could not find the file %s in container %s: %w", p, c.Name, ErrNotFound)
		}
		if as == "" {
			as = base
		}
		return archive.WriteEntry(w, parent, base, as, archive.DiffOptions{IDMap: c.idMap(root, rootfs)})
	})
}

// StatIn reports whether p exists in the container and is a directory.
func (e *Engine) StatIn(ctx context.Context, ref, p string) (exists, isDir bool, err error) {
	c, err := e.Get(ref)
	if err != nil {
		return false, false, err
	}
	err = e.withRootfs(c, func(rootfs string) error {
		root, rel := resolveInContainer(c, rootfs, p)
		f, err := pathrs.OpenInRoot(root, rel)
		if err != nil {
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err == nil {
			exists, isDir = true, fi.IsDir()
		}
		return nil
	})
	return exists, isDir, err
}

// CopyTo extracts the tar read from r into the container's directory dst,
// which must exist. The extraction is confined to the container's tree.
func (e *Engine) CopyTo(ctx context.Context, ref, dst string, r io.Reader) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if c.HostConfig.ReadonlyRootfs && c.State.Running() {
		return fmt.Errorf("container %s has a read-only root filesystem: %w", c.Name, ErrConflict)
	}
	return e.withRootfs(c, func(rootfs string) error {
		root, rel := resolveInContainer(c, rootfs, dst)
		d, err := openInRoot(root, rel)
		if err != nil {
			return fmt.Errorf("could not find the directory %s in container %s: %w", dst, c.Name, err)
		}
		defer d.Close()
		if fi, err := d.Stat(); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s in container %s is not a directory", dst, c.Name)
		}
		_, err = archive.Apply(fmt.Sprintf("/proc/self/fd/%d", d.Fd()), r, archive.ApplyOptions{IDMap: c.idMap(root, rootfs)})
		return err
	})
}

// Export writes the container's whole root filesystem as a tar.
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	return e.withRootfs(c, func(rootfs string) error {
		d, err := os.Open(rootfs)
		if err != nil {
			return err
		}
		defer d.Close()
		return archive.WriteTree(w, d, archive.DiffOptions{IDMap: c.idMap(rootfs, rootfs)})
	})
}

// DiffLayer writes the container's changes to its image as a layer tar
// (what commit stores). A running container is paused meanwhile when
// pause is set.
func (e *Engine) DiffLayer(ctx context.Context, ref string, pause bool, w io.Writer) (*Container, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	if pause && c.State.Status == "running" {
		if _, err := e.Pause(c.ID); err == nil {
			defer e.Unpause(c.ID)
		}
	}
	return c, e.snap.Diff(c.Snapshot, w)
}

// Change is one entry of `berth diff`: A added, C changed, D deleted.
type Change struct {
	Kind string
	Path string
}

// Changes lists the container's changes to its image.
func (e *Engine) Changes(ctx context.Context, ref string) ([]Change, error) {
	c, err := e.Get(ref)
	if err != nil {
		return nil, err
	}
	info, err := e.snap.Stat(c.Snapshot)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(e.snap.Diff(c.Snapshot, pw)) }()
	defer pr.Close()
	var lower string
	if info.Parent != "" {
		key := "berth-diffview-" + newID()[:16]
		mounts, err := e.snap.View(key, info.Parent, nil)
		if err != nil {
			return nil, err
		}
		defer e.snap.Remove(key)
		dir, err := e.tempMountDir()
		if err != nil {
			return nil, err
		}
		defer os.Remove(dir)
		if err := snapshot.MountAll(mounts, dir); err != nil {
			return nil, err
		}
		defer snapshot.UnmountAll(dir)
		lower = dir
	}
	var out []Change
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := "/" + strings.TrimSuffix(path.Clean(h.Name), "/")
		dir, base := path.Split(name)
		switch {
		case base == ".wh..wh..opq":
			continue
		case strings.HasPrefix(base, ".wh."):
			out = append(out, Change{"D", path.Join(dir, strings.TrimPrefix(base, ".wh."))})
		default:
			kind := "A"
			if lower != "" {
				if p, err := securejoin.SecureJoin(lower, name); err == nil {
					if _, err := os.Lstat(p); err == nil {
						kind = "C"
					}
				}
			}
			out = append(out, Change{kind, name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

var _ = filepath.Join

// tempMountDir makes a directory for a temporary mount of this process
// (cp, export, diff of a stopped container). Its name carries our pid, so
// that a process killed while it held the mount (kill -9, or SIGPIPE when
// `berth export | head` closes the pipe) has its mount removed by the next
// command (gcTempMounts).
func (e *Engine) tempMountDir() (string, error) {
	return os.MkdirTemp(e.cfg.RunDir, fmt.Sprintf("berth-mnt-%d-", os.Getpid()))
}

// gcTempMounts unmounts and removes temporary mounts whose process is gone.
func (e *Engine) gcTempMounts() {
	ents, err := os.ReadDir(e.cfg.RunDir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		rest, ok := strings.CutPrefix(ent.Name(), "berth-mnt-")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err == nil && pid > 0 && unix.Kill(pid, 0) == nil {
			continue // still in use (or a recycled pid: removed another time)
		}
		dir := filepath.Join(e.cfg.RunDir, ent.Name())
		snapshot.UnmountAll(dir)
		os.Remove(dir)
	}
}
