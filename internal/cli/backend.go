package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/overlay"
	"github.com/berth-project/berth/storage/snapshot/vfs"
)

// backend is the engine with its image store and snapshotter, opened
// once per command.
type backend struct {
	snap   snapshot.Snapshotter
	images *image.Service
	eng    *engine.Engine
	driver string
}

func openBackend(g *globals) (*backend, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("berth needs root (rootless mode is not available yet)")
	}
	root, err := filepath.Abs(g.root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("root directory %s: %w", root, err)
	}
	driver := g.driver
	if driver == "" {
		driver = detectDriver(root)
	}
	be := &backend{driver: driver}
	switch driver {
	case "overlay", "overlay2":
		be.driver = "overlay"
		be.snap, err = overlay.New(filepath.Join(root, "snapshots", "overlay"))
	case "vfs":
		be.snap, err = vfs.New(filepath.Join(root, "snapshots", "vfs"))
	default:
		return nil, fmt.Errorf("unknown storage driver %q: want overlay or vfs", driver)
	}
	if err != nil {
		return nil, fmt.Errorf("storage driver %s: %w", driver, err)
	}
	var eng *engine.Engine
	if g.noImages {
		// The supervisor's callbacks never touch images: spare them
		// opening the image store (a database write) on every start.
		eng, err = engine.New(engine.Config{Root: root, RunDir: g.runDir, Driver: be.driver}, be.snap, imageAdapter{})
		if err != nil {
			be.close()
			return nil, err
		}
		be.eng = eng
		return be, nil
	}
	be.images, err = image.Open(root, image.Options{
		Snapshotter: be.snap,
		InUse: func(id string) bool {
			if eng == nil {
				return false
			}
			cs, err := eng.List()
			if err != nil {
				return true // be safe: keep the image
			}
			for _, c := range cs {
				if c.Image == id {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		be.snap.Close()
		return nil, err
	}
	eng, err = engine.New(engine.Config{Root: root, RunDir: g.runDir, Driver: be.driver}, be.snap, imageAdapter{be.images})
	if err != nil {
		be.close()
		return nil, err
	}
	be.eng = eng
	return be, nil
}

func (be *backend) close() {
	if be.images != nil {
		be.images.Close()
	}
	if be.snap != nil {
		be.snap.Close()
	}
}

// detectDriver picks overlay when the root's filesystem can be an
// overlay upper layer (not overlayfs itself, say), else vfs. A choice made
// before is kept: a store's layers stay with their driver.
func detectDriver(root string) string {
	for _, d := range []string{"overlay", "vfs"} {
		if _, err := os.Stat(filepath.Join(root, "snapshots", d)); err == nil {
			return d
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && st.Type == unix.OVERLAYFS_SUPER_MAGIC {
		return "vfs"
	}
	if data, err := os.ReadFile("/proc/filesystems"); err == nil && !strings.Contains(string(data), "\toverlay\n") {
		return "vfs"
	}
	return "overlay"
}

// imageAdapter gives the engine the images it runs.
type imageAdapter struct{ s *image.Service }

func (a imageAdapter) ForContainer(ctx context.Context, ref string) (*engine.ImageInfo, error) {
	if a.s == nil {
		return nil, fmt.Errorf("image store not open in this command")
	}
	img, err := a.s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	chain, err := a.s.Unpack(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("unpack image %s: %w", ref, err)
	}
	info := &engine.ImageInfo{ID: img.ID, Ref: ref, ChainID: chain}
	if img.Config != nil {
		info.Config = imageConfig(&img.Config.Config)
	}
	return info, nil
}

func imageConfig(c *v1.Config) engine.ImageConfig {
	ic := engine.ImageConfig{
		Cmd: c.Cmd, Entrypoint: c.Entrypoint, Env: c.Env, Shell: c.Shell,
		WorkingDir: c.WorkingDir, User: c.User, StopSignal: c.StopSignal,
		Labels: c.Labels, ExposedPorts: c.ExposedPorts, Volumes: c.Volumes,
	}
	if h := c.Healthcheck; h != nil {
		ic.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	return ic
}

// notFound reports whether err says an image or container does not exist.
func notFound(err error) bool {
	return errors.Is(err, image.ErrNotFound) || errors.Is(err, engine.ErrNotFound)
}
