// Package store owns the on-disk bookkeeping shared by berth's snapshot
// drivers: the metadata database (key → id, parent, kind, labels,
// created), the snapshot directories under <root>/snapshots, and the
// protocol that keeps the two consistent when many berth processes use
// one root at once and any of them may be killed at any moment.
//
// Snapshots, which the drivers embed, is the part of snapshot.Snapshotter
// that is the same in every driver (Stat, Mounts, Commit, Remove, Walk,
// Usage, Close); Store.Add records a snapshot a driver has built.
//
// # Concurrency
//
// The bbolt database (<root>/metadata.db) is opened for each operation and
// closed right after, so it is never held between commands. Before opening
// it, an operation takes an flock on <root>/lock: shared for reads,
// exclusive for writes. That lock (rather than bbolt's own, which polls
// every 50 ms) is taken with a short back-off, and within one process a
// mutex orders goroutines first so they do not poll at all.
//
// # Crash safety
//
// A snapshot directory is built under a temporary name (snapshots/tmp-*)
// while its builder holds an flock on it; slow work (copying a tree) is
// done there without holding the database lock. It is renamed to its final
// name (snapshots/<id>) inside the write transaction that records it, so
// the rename and the record become visible together: a final directory
// without a record is garbage from a crash between the two. Removal
// deletes the record first and then renames the directory to rm-* before
// deleting it. Cleanup (run by the drivers' New and Cleanup) looks under
// the shared lock and, only if it finds any, removes under the exclusive
// lock final directories nothing refers to, rm-* directories, and tmp-*
// directories whose builder is gone (their flock can be taken).
//
// Write transactions are synced (bbolt's two fdatasyncs per commit): a
// kill -9 alone would not need it, but a power loss could otherwise leave
// the database unreadable. That is the only syncing; snapshot trees are
// not synced file by file (as Docker and containerd do not).
//
// It must not import the drivers; the drivers import it.
package store

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/storage/snapshot"
)

// LockTimeout is how long an operation waits for another process that
// holds the store's lock before failing.
var LockTimeout = 2 * time.Minute

// TempGrace is the age under which an unlocked temporary directory is
// left alone by Cleanup: its builder may not have locked it yet.
var TempGrace = 5 * time.Second

var (
	bucketSnapshots = []byte("snapshots")
	bucketChildren  = []byte("children")
)

// Record is the metadata of one snapshot.
type Record struct {
	Key     string            `json:"-"`
	ID      string            `json:"id"`
	Parent  string            `json:"parent,omitempty"`
	Kind    snapshot.Kind     `json:"kind"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
	// Link is a driver's short name for the snapshot (the overlay
	// driver's l/ symlink), "" when it has none.
	Link string `json:"link,omitempty"`
}

// Info returns the record as a snapshot.Info.
func (r Record) Info() snapshot.Info {
	labels := make(map[string]string, len(r.Labels))
	for k, v := range r.Labels {
		labels[k] = v
	}
	return snapshot.Info{Key: r.Key, Parent: r.Parent, Kind: r.Kind, Labels: labels, Created: r.Created}
}

// Store is the bookkeeping of one driver root.
type Store struct {
	root string
	mu   sync.RWMutex
}

// Open prepares root (creating it, its snapshots directory and its
// database when missing).
func Open(root string) (*Store, error) {
	if !filepath.IsAbs(root) {
		abs, err := filepath.Abs(root)
		if err != nil {
			return nil, fmt.Errorf("snapshot root %q: %w", root, err)
		}
		root = abs
	}
	root = filepath.Clean(root)
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot root: %w", err)
	}
	markTopdir(filepath.Join(root, "snapshots"))
	s := &Store{root: root}
	if _, err := os.Stat(s.dbPath()); err != nil {
		if err := s.Update(func(tx *Tx) error { return nil }); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Root is the driver root.
func (s *Store) Root() string { return s.root }

// Dir is the directory of the snapshot with the given id.
func (s *Store) Dir(id string) string { return filepath.Join(s.root, "snapshots", id) }

// Tx is a database transaction.
type Tx struct {
	tx         *bolt.Tx
	onCommit   []func()
	onRollback []func()
}

// OnCommit runs f after the transaction committed, still under the
// store's exclusive lock.
func (t *Tx) OnCommit(f func()) { t.onCommit = append(t.onCommit, f) }

// OnRollback runs f when the transaction does not commit.
func (t *Tx) OnRollback(f func()) { t.onRollback = append(t.onRollback, f) }

// Get returns the record of key, or an error wrapping snapshot.ErrNotFound.
func (t *Tx) Get(key string) (Record, error) {
	var r Record
	b := t.tx.Bucket(bucketSnapshots)
	if b == nil {
		return r, fmt.Errorf("snapshot %q: %w", key, snapshot.ErrNotFound)
	}
	v := b.Get([]byte(key))
	if v == nil {
		return r, fmt.Errorf("snapshot %q: %w", key, snapshot.ErrNotFound)
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("snapshot %q: corrupt record: %w", key, err)
	}
	r.Key = key
	return r, nil
}

// Exists says whether key is recorded.
func (t *Tx) Exists(key string) bool {
	b := t.tx.Bucket(bucketSnapshots)
	return b != nil && b.Get([]byte(key)) != nil
}

// Chain returns key's record followed by its ancestors, nearest first.
func (t *Tx) Chain(key string) ([]Record, error) {
	var out []Record
	for k := key; k != ""; {
		r, err := t.Get(k)
		if err != nil {
			if len(out) > 0 {
				return nil, fmt.Errorf("parent of %q: %w", out[len(out)-1].Key, err)
			}
			return nil, err
		}
		out = append(out, r)
		if len(out) > 10000 {
			return nil, fmt.Errorf("snapshot %q: parent chain loops", key)
		}
		k = r.Parent
	}
	return out, nil
}

// ParentChain checks that parent ("" for none) is a committed snapshot
// and returns its chain (nil for "").
func (t *Tx) ParentChain(parent string) ([]Record, error) {
	if parent == "" {
		return nil, nil
	}
	chain, err := t.Chain(parent)
	if err != nil {
		return nil, fmt.Errorf("parent: %w", err)
	}
	if chain[0].Kind != snapshot.KindCommitted {
		return nil, fmt.Errorf("parent %q is %s, not committed", parent, chain[0].Kind)
	}
	return chain, nil
}

func childKey(parent, child string) []byte {
	return append(append([]byte(parent), 0), child...)
}

// Put writes r, which must have a key, and indexes it under its parent.
func (t *Tx) Put(r Record) error {
	b, err := t.tx.CreateBucketIfNotExists(bucketSnapshots)
	if err != nil {
		return err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := b.Put([]byte(r.Key), v); err != nil {
		return fmt.Errorf("record snapshot %q: %w", r.Key, err)
	}
	if r.Parent != "" {
		c, err := t.tx.CreateBucketIfNotExists(bucketChildren)
		if err != nil {
			return err
		}
		if err := c.Put(childKey(r.Parent, r.Key), nil); err != nil {
			return fmt.Errorf("record snapshot %q: %w", r.Key, err)
		}
	}
	return nil
}

// Children returns the keys of key's children.
func (t *Tx) Children(key string) []string {
	c := t.tx.Bucket(bucketChildren)
	if c == nil {
		return nil
	}
	prefix := childKey(key, "")
	var out []string
	cur := c.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		out = append(out, string(k[len(prefix):]))
	}
	return out
}

// Delete removes key's record; it refuses (snapshot.ErrInUse) when key
// has children.
func (t *Tx) Delete(key string) (Record, error) {
	r, err := t.Get(key)
	if err != nil {
		return r, err
	}
	if ch := t.Children(key); len(ch) > 0 {
		return r, fmt.Errorf("snapshot %q has %d children (%s): %w", key, len(ch), strings.Join(ch, ", "), snapshot.ErrInUse)
	}
	if err := t.tx.Bucket(bucketSnapshots).Delete([]byte(key)); err != nil {
		return r, err
	}
	if r.Parent != "" {
		if c := t.tx.Bucket(bucketChildren); c != nil {
			if err := c.Delete(childKey(r.Parent, key)); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// All returns every record.
func (t *Tx) All() ([]Record, error) {
	b := t.tx.Bucket(bucketSnapshots)
	if b == nil {
		return nil, nil
	}
	var out []Record
	err := b.ForEach(func(k, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("snapshot %q: corrupt record: %w", k, err)
		}
		r.Key = string(k)
		out = append(out, r)
		return nil
	})
	return out, err
}

// CrashHook, when set (by tests only), is called at the named points of
// an operation; tests make it kill the process there.
var CrashHook func(point string)

// Crash calls CrashHook.
func Crash(point string) {
	if CrashHook != nil {
		CrashHook(point)
	}
}

// View runs fn in a read-only transaction under the shared lock.
func (s *Store) View(fn func(tx *Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	unlock, err := s.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	db, err := bolt.Open(s.dbPath(), 0o600, &bolt.Options{ReadOnly: true, Timeout: LockTimeout})
	if err != nil {
		return fmt.Errorf("open snapshot metadata %s: %w", s.dbPath(), err)
	}
	defer db.Close()
	return db.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Update runs fn in a write transaction under the exclusive lock, commits
// it, and then runs the transaction's OnCommit functions (or its
// OnRollback functions when fn or the commit failed).
func (s *Store) Update(fn func(tx *Tx) error) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lock(true)
	if err != nil {
		return err
	}
	defer unlock()
	db, err := bolt.Open(s.dbPath(), 0o600, &bolt.Options{Timeout: LockTimeout})
	if err != nil {
		return fmt.Errorf("open snapshot metadata %s: %w", s.dbPath(), err)
	}
	defer db.Close()
	tx := &Tx{}
	err = db.Update(func(btx *bolt.Tx) error {
		tx.tx = btx
		return fn(tx)
	})
	if err != nil {
		for i := len(tx.onRollback) - 1; i >= 0; i-- {
			tx.onRollback[i]()
		}
		return err
	}
	for _, f := range tx.onCommit {
		f()
	}
	return nil
}

func (s *Store) dbPath() string { return filepath.Join(s.root, "metadata.db") }

// lock takes the flock on <root>/lock, polling with a growing back-off
// (100µs up to 10ms) until LockTimeout.
func (s *Store) lock(exclusive bool) (func(), error) {
	p := filepath.Join(s.root, "lock")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store lock: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	deadline := time.Now().Add(LockTimeout)
	wait := 100 * time.Microsecond
	for {
		err = unix.Flock(fd, how|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		if time.Now().After(deadline) {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: another process has held it for %v", p, LockTimeout)
		}
		time.Sleep(wait)
		if wait < 10*time.Millisecond {
			wait *= 2
		}
	}
}

// NewID returns a random identifier of n hex digits.
func NewID(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// Temp is a snapshot directory being built under a temporary name.
type Temp struct {
	s      *Store
	Path   string
	fd     int
	placed bool
}

// NewTemp makes an empty temporary snapshot directory and locks it for
// as long as this process builds it.
func (s *Store) NewTemp() (*Temp, error) {
	p := filepath.Join(s.root, "snapshots", "tmp-"+NewID(16))
	if err := os.Mkdir(p, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot directory: %w", err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		os.Remove(p)
		return nil, fmt.Errorf("lock snapshot directory %s: %w", p, err)
	}
	return &Temp{s: s, Path: p, fd: fd}, nil
}

// Place renames the directory to the snapshot directory of id; call it
// inside the Update transaction that records the snapshot. If the
// transaction does not commit, the directory goes back to its temporary
// name.
func (t *Temp) Place(tx *Tx, id string) error {
	final := t.s.Dir(id)
	if err := os.Rename(t.Path, final); err != nil {
		return fmt.Errorf("place snapshot directory: %w", err)
	}
	t.placed = true
	tx.OnRollback(func() {
		if os.Rename(final, t.Path) == nil {
			t.placed = false
		}
	})
	Crash("placed")
	return nil
}

// Close releases the directory: it is removed unless it was placed.
func (t *Temp) Close() {
	if !t.placed {
		os.RemoveAll(t.Path)
	}
	unix.Close(t.fd)
}

// Forget removes the directory of a snapshot whose record was deleted
// (under the exclusive lock, from a transaction's OnCommit): it is renamed
// to rm-* at once and the returned function deletes it, to be called once
// the lock is released.
func (s *Store) Forget(id string) func() {
	gone := filepath.Join(s.root, "snapshots", "rm-"+id)
	if err := os.Rename(s.Dir(id), gone); err != nil {
		return func() {}
	}
	Crash("forgotten")
	return func() { os.RemoveAll(gone) }
}

// Cleanup removes what crashed operations left behind (see the package
// comment), and the paths extra (if not nil) names given every record.
// It looks first under the shared lock and takes the exclusive one (and
// writes the database) only when there is something to remove, so that
// opening a store costs no write.
func (s *Store) Cleanup(extra func(recs []Record) ([]string, error)) error {
	var found bool
	err := s.View(func(tx *Tx) error {
		g, err := s.garbage(tx, extra)
		found = len(g) > 0
		return err
	})
	if err != nil || !found {
		return err
	}
	var moved []string
	err = s.Update(func(tx *Tx) error {
		g, err := s.garbage(tx, extra)
		if err != nil {
			return err
		}
		// Out of the way now, under the lock (a final directory must not
		// be found again by its id); deleted after.
		for _, p := range g {
			name := filepath.Base(p)
			if filepath.Dir(p) != filepath.Join(s.root, "snapshots") || strings.HasPrefix(name, "rm-") {
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("clean up: %w", err)
				}
				continue
			}
			gone := filepath.Join(s.root, "snapshots", "rm-"+strings.TrimPrefix(name, "tmp-"))
			if err := os.Rename(p, gone); err != nil && !IsNotFound(err) {
				return fmt.Errorf("clean up %s: %w", p, err)
			}
			moved = append(moved, gone)
		}
		return nil
	})
	for _, p := range moved {
		if rerr := os.RemoveAll(p); rerr != nil && err == nil {
			err = fmt.Errorf("clean up: %w", rerr)
		}
	}
	return err
}

// garbage lists what Cleanup removes.
func (s *Store) garbage(tx *Tx, extra func(recs []Record) ([]string, error)) ([]string, error) {
	recs, err := tx.All()
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(recs))
	for _, r := range recs {
		ids[r.ID] = true
	}
	dir := filepath.Join(s.root, "snapshots")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, "rm-"):
			out = append(out, p)
		case strings.HasPrefix(name, "tmp-"):
			if abandoned(p) {
				out = append(out, p)
			}
		case !ids[name]:
			out = append(out, p)
		}
	}
	if extra != nil {
		more, err := extra(recs)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// abandoned says whether the builder of the temporary directory p is gone:
// nobody holds its flock and it is not brand new (its builder locks it
// right after making it).
func abandoned(p string) bool {
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil || time.Since(time.Unix(st.Ctim.Unix())) < TempGrace {
		return false
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	return err == nil
}

// IsNotFound reports whether err means a missing file.
func IsNotFound(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT)
}

// DiskUsage returns the disk use of the tree at dir: allocated bytes and
// inodes, each hard-linked inode counted once.
func DiskUsage(dir string) (snapshot.Usage, error) {
	var u snapshot.Usage
	type ino struct{ dev, ino uint64 }
	seen := map[ino]bool{}
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			k := ino{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("disk usage of %s: %w", dir, err)
	}
	return u, nil
}
