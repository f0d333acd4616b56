// Package image is berth's image store: the images a host has, by name
// and ID, on top of the content store (image/content/local) and a
// snapshotter (storage/snapshot). It registers images whose blobs pull or
// load wrote, unpacks their layers into snapshots shared by every image,
// tags, lists, removes and prunes them, shows their history, makes new
// images from a container's diff (commit) or a rootfs tar (import), and
// collects blobs and snapshots no image references.
//
// # Storage
//
// Under berth's root: content/ (the blob store) and image/images.db, a
// bbolt database opened for each operation, never held, so many berth
// processes share it; bbolt's flock serialises writers and each change is
// one transaction, so a process killed at any moment leaves either the old
// or the new state. Buckets: "images" (image ID -> record), "refs" (full
// normalised reference -> image ID), "layers" (chain ID -> unpacked size).
// An image ID is its config's digest, as in Docker.
//
// # Garbage collection and leases
//
// Blobs and snapshots are referenced only through image records, so the
// blobs a pull has written but not yet registered, and the snapshots an
// unpack is making, would look like garbage. Such work holds a lease
// (Service.Lease: a shared flock on image/gc.lock); collection takes the
// same lock exclusively and so never runs during it. Register, Unpack,
// UnpackLayer, Commit and a Stager take a lease themselves; pull and load
// must hold one from their first blob write to Register.
//
// # Unpacking while pulling or loading
//
// A Stager (stage_linux.go) extracts each layer while its blob downloads
// or passes through an archive, into a parentless temporary snapshot named
// by the digest the stream decompressed to. Nothing is committed then:
// Unpack (WithStaged), after Register, places those trees on their parents
// and commits them. A process killed meanwhile leaves only temporary
// snapshots, which the next Unpack or collection removes.
//
// It imports the content and snapshot contracts, storage/archive and
// image/reference; never the engine, CLI or registry code.
package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/content/local"
	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Errors returned (wrapped) by the Service.
var (
	// ErrNotFound: no image has the name or ID.
	ErrNotFound = errors.New("no such image")
	// ErrConflict: the operation would break something (an image used by
	// a container, referenced in several repositories, with children).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: bad input (a reference, a manifest, a config, a layer).
	ErrInvalid = errors.New("invalid")
)

// Options configure a Service.
type Options struct {
	// Snapshotter holds unpacked layers. Required for Unpack and Commit.
	Snapshotter snapshot.Snapshotter
	// InUse reports whether a container uses the image with this ID
	// ("sha256:<hex>"). Nil means none is.
	InUse func(imageID string) bool
	// Platform is the platform Register picks from an index; nil is the
	// host's (linux and runtime.GOARCH).
	Platform *ocispec.Platform
	// Apply are the base options for applying layers (an ID map and
	// user xattrs for rootless mode, say); Whiteouts is set by Unpack.
	Apply archive.ApplyOptions
	// LockTimeout bounds the wait for the database and for the GC lock
	// (default 2 minutes).
	LockTimeout time.Duration
}

// Service is the image store. It is safe for concurrent use by many
// goroutines and processes.
type Service struct {
	root    string
	content *local.Store
	sn      snapshot.Snapshotter
	opts    Options
	dbPath  string
	gcLock  string
}

const (
	bucketImages = "images"
	bucketRefs   = "refs"
	bucketLayers = "layers"
)

// Open opens the image store under berth's root directory.
func Open(root string, opts Options) (*Service, error) {
	cs, err := local.New(filepath.Join(root, "content"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "image"), 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 2 * time.Minute
	}
	s := &Service{
		root:    root,
		content: cs,
		sn:      opts.Snapshotter,
		opts:    opts,
		dbPath:  filepath.Join(root, "image", "images.db"),
		gcLock:  filepath.Join(root, "image", "gc.lock"),
	}
	// Make the database and its buckets once; later opens only read (a
	// write transaction is a synced write every berth command would pay).
	ready := false
	if _, err := os.Stat(s.dbPath); err == nil {
		s.view(context.Background(), func(tx *bolt.Tx) error {
			ready = tx.Bucket([]byte(bucketImages)) != nil && tx.Bucket([]byte(bucketRefs)) != nil && tx.Bucket([]byte(bucketLayers)) != nil
			return nil
		})
	}
	if !ready {
		if err := s.update(context.Background(), func(*bolt.Tx) error { return nil }); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Content is the blob store pull, push, load and save read and write.
func (s *Service) Content() content.Store { return s.content }

// ContentStore is the local blob store itself (for PruneIngests, BlobPath).
func (s *Service) ContentStore() *local.Store { return s.content }

// Snapshotter is the snapshotter layers are unpacked into.
func (s *Service) Snapshotter() snapshot.Snapshotter { return s.sn }

// Close releases the Service (it holds nothing open between calls).
func (s *Service) Close() error { return nil }

func (s *Service) platform() ocispec.Platform {
	if s.opts.Platform != nil {
		return *s.opts.Platform
	}
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

func (s *Service) inUse(id string) bool {
	return s.opts.InUse != nil && s.opts.InUse(id)
}

func (s *Service) openDB(ctx context.Context, readOnly bool) (*bolt.DB, error) {
	timeout := s.opts.LockTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	db, err := bolt.Open(s.dbPath, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("open image database %s: %w", s.dbPath, err)
	}
	return db, nil
}

// update runs fn in a write transaction of a freshly opened database.
func (s *Service) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db, err := s.openDB(ctx, false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{bucketImages, bucketRefs, bucketLayers} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return fmt.Errorf("image database: %w", err)
			}
		}
		return fn(tx)
	})
}

// view runs fn in a read transaction (a shared lock: readers run at once).
func (s *Service) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db, err := s.openDB(ctx, true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

// Lease keeps garbage collection away until release is called: hold one
// while writing blobs or snapshots that no image references yet.
func (s *Service) Lease(ctx context.Context) (release func(), err error) {
	f, err := lockShared(ctx, s.gcLock, s.opts.LockTimeout)
	if err != nil {
		return nil, fmt.Errorf("take an image store lease: %w", err)
	}
	return func() { f.Close() }, nil
}
