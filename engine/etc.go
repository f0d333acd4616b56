package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-project/berth/internal/atomicfile"
	"github.com/berth-project/berth/storage/archive"
)

// writeEtcFiles writes the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf under its directory and points the spec at them, as
// Docker does (bind mounts, so edits inside the container stay with it).
func (e *Engine) writeEtcFiles(c *Container, in *specInput) error {
	dir := e.ctrDir(c.ID)
	hc := c.HostConfig
	if hc.NetworkMode.IsContainer() {
		// Joined network stack: use the other container's files.
		other, err := e.Get(strings.TrimPrefix(string(hc.NetworkMode), "container:"))
		if err != nil {
			return err
		}
		od := e.ctrDir(other.ID)
		in.HostsPath, in.HostnamePath, in.ResolvPath = filepath.Join(od, "hosts"), filepath.Join(od, "hostname"), filepath.Join(od, "resolv.conf")
		return nil
	}
	hostname := c.Config.Hostname
	if hc.NetworkMode.IsHost() || hc.UTSMode.IsHost() {
		hostname, _ = os.Hostname()
	}
	hosts, resolv, err := e.netFiles(c, hostname)
	if err != nil {
		return err
	}
	files := map[string][]byte{"hostname": []byte(hostname + "\n"), "hosts": hosts, "resolv.conf": resolv}
	for name, data := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data, 0o644, false); err != nil {
			return err
		}
		// Docker gives them to the container's root: it may edit them.
		if err := c.chownToRoot(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	in.HostsPath, in.HostnamePath, in.ResolvPath = filepath.Join(dir, "hosts"), filepath.Join(dir, "hostname"), filepath.Join(dir, "resolv.conf")
	return nil
}

// populateVolumes copies the image's content at each new volume's mount
// point into the volume, once, as Docker does (unless nocopy).
func (e *Engine) populateVolumes(c *Container, rootfs string) error {
	for _, m := range c.Mounts {
		if m.Type != "volume" {
			continue
		}
		nocopy := false
		for _, o := range m.Options {
			nocopy = nocopy || o == "nocopy"
		}
		v, err := e.VolumeGet(m.Name)
		if err != nil {
			return fmt.Errorf("volume %s: %w", m.Name, err)
		}
		if v.Populated {
			continue
		}
		// A new volume belongs to the container's root (as Docker's do
		// under a remapped root); copied image content keeps the owners
		// the container sees, as the rootfs shows them.
		if err := c.chownToRoot(v.Mountpoint); err != nil {
			return err
		}
		if !nocopy {
			if err := copyIntoVolume(rootfs, m.Destination, v.Mountpoint); err != nil {
				return fmt.Errorf("populate volume %s from %s: %w", v.Name, m.Destination, err)
			}
		}
		if err := e.markPopulated(v.Name); err != nil {
			return err
		}
	}
	return nil
}

// copyIntoVolume copies the tree at dst inside rootfs into an empty
// volume directory. The source is read through a tar stream of the
// directory opened inside the root (symlinks in the image cannot lead it
// out), and written with the confined layer unpacker.
func copyIntoVolume(rootfs, dst, volume string) error {
	entries, err := os.ReadDir(volume)
	if err != nil || len(entries) > 0 {
		return err // not empty: never overwrite
	}
	src, err := openInRoot(rootfs, dst)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil || !fi.IsDir() {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(archive.WriteTree(pw, src, archive.DiffOptions{}))
	}()
	_, err = archive.Apply(volume, pr, archive.ApplyOptions{})
	pr.Close()
	return err
}
