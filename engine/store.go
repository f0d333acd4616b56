package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The metadata database: containers by id, the name index, volumes.
// It is opened for each transaction and closed after it, so that many
// berth processes share it (bbolt takes an exclusive flock while open):
// nobody holds it across a slow operation.
var (
	bucketContainers = []byte("containers")
	bucketNames      = []byte("names")
	bucketVolumes    = []byte("volumes")
)

// ErrNotFound is returned (wrapped) for a container, volume or exec that
// does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) for a name in use, a running
// container removed without force, and the like.
var ErrConflict = errors.New("conflict")

type store struct{ path string }

func (s *store) open(readOnly bool) (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 30 * time.Second, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	return db, nil
}

func (s *store) update(fn func(tx *bolt.Tx) error) error {
	db, err := s.open(false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketContainers, bucketNames, bucketVolumes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

func (s *store) view(fn func(tx *bolt.Tx) error) error {
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return s.update(fn) // first use: make the buckets
	}
	db, err := s.open(true)
	if err != nil {
		return err
	}
	fresh := false
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketContainers, bucketNames, bucketVolumes} {
			if tx.Bucket(b) == nil {
				fresh = true // made by a process that has not committed its buckets yet
				return nil
			}
		}
		return fn(tx)
	})
	db.Close()
	if fresh {
		return s.update(fn)
	}
	return err
}

func getContainer(tx *bolt.Tx, id string) (*Container, error) {
	b := tx.Bucket(bucketContainers)
	if b == nil {
		return nil, fmt.Errorf("no such container: %s: %w", id, ErrNotFound)
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("no such container: %s: %w", id, ErrNotFound)
	}
	c := new(Container)
	if err := json.Unmarshal(v, c); err != nil {
		return nil, fmt.Errorf("container %s: corrupt record: %w", id, err)
	}
	return c, nil
}

func putContainer(tx *bolt.Tx, c *Container) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketContainers).Put([]byte(c.ID), v)
}

// resolve finds a container by full id, name (with or without the
// leading slash) or unique id prefix, as Docker does.
func resolve(tx *bolt.Tx, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("no container name or id given: %w", ErrNotFound)
	}
	b := tx.Bucket(bucketContainers)
	if b == nil {
		return "", fmt.Errorf("no such container: %s: %w", ref, ErrNotFound)
	}
	if b.Get([]byte(ref)) != nil {
		return ref, nil
	}
	if id := tx.Bucket(bucketNames).Get([]byte(strings.TrimPrefix(ref, "/"))); id != nil {
		return string(id), nil
	}
	var found []string
	c := b.Cursor()
	for k, _ := c.Seek([]byte(ref)); k != nil && strings.HasPrefix(string(k), ref); k, _ = c.Next() {
		found = append(found, string(k))
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no such container: %s: %w", ref, ErrNotFound)
	case 1:
		return found[0], nil
	}
	sort.Strings(found)
	return "", fmt.Errorf("container id prefix %s is ambiguous (%d matches): %w", ref, len(found), ErrConflict)
}

func allContainers(tx *bolt.Tx) ([]*Container, error) {
	var out []*Container
	err := tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
		c := new(Container)
		if err := json.Unmarshal(v, c); err != nil {
			return fmt.Errorf("container %s: corrupt record: %w", k, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}
