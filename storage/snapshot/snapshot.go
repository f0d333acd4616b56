// Package snapshot defines berth's snapshotters: stores of filesystem trees
// stacked on one another, as image layers and container root filesystems
// are.
//
// A committed snapshot is an unpacked image layer, named by its chain ID
// and shared by every image and container that uses it. An active snapshot
// is a writable tree on top of a committed parent: a layer being unpacked,
// or a container's root filesystem. A view is a read-only one.
//
// Drivers (subpackages) implement Snapshotter: overlay (overlayfs) and vfs
// (full copies, for filesystems without overlay). Both pass the shared
// conformance suite in snapshottest.
package snapshot

import (
	"errors"
	"io"
	"time"
)

// Kind is a snapshot's kind.
type Kind int

const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// Errors returned (wrapped) by snapshotters.
var (
	ErrNotFound = errors.New("snapshot not found")
	ErrExists   = errors.New("snapshot already exists")
	ErrInUse    = errors.New("snapshot has dependents")
)

// Info describes a snapshot.
type Info struct {
	Key     string
	Parent  string // "" for a base
	Kind    Kind
	Labels  map[string]string
	Created time.Time
}

// Usage is the disk use of a snapshot's own tree (not its parents').
type Usage struct {
	Size   int64 // bytes
	Inodes int64
}

// Mount is one mount that makes a snapshot's tree appear at a target,
// in the shape of an OCI runtime-spec mount (Type, Source, Options).
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// Snapshotter stores snapshots. Implementations are safe for concurrent use
// by many processes; an operation killed at any moment leaves the store
// consistent (a half-made snapshot is invisible and cleaned up later).
type Snapshotter interface {
	Stat(key string) (Info, error)
	// Prepare makes a writable active snapshot key on top of the committed
	// snapshot parent ("" for an empty tree) and returns its mounts.
	Prepare(key, parent string, labels map[string]string) ([]Mount, error)
	// View makes a read-only snapshot of parent.
	View(key, parent string, labels map[string]string) ([]Mount, error)
	// Mounts returns the mounts of an active snapshot or a view.
	Mounts(key string) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot
	// name; key no longer exists afterwards.
	Commit(name, key string, labels map[string]string) error
	// Remove deletes a snapshot that has no children (ErrInUse otherwise).
	Remove(key string) error
	Walk(fn func(Info) error) error
	Usage(key string) (Usage, error)
	// ApplyDir is the directory a layer tar is applied into for the active
	// snapshot key without mounting it, and whether the directory takes
	// overlayfs-style whiteouts (char 0/0 devices, opaque xattrs) rather
	// than plain removals of lower files. Fast unpack path.
	ApplyDir(key string) (dir string, overlay bool, err error)
	// Diff writes the changes of the active snapshot key against its
	// parent as an OCI layer tar (uncompressed, whiteouts as .wh. files).
	// It is what `berth diff` and `commit` read.
	Diff(key string, w io.Writer) error
	// Close releases the store.
	Close() error
}
