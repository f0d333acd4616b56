package registry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// SourceDB is the path of a small bbolt database recording, for each blob,
// the registry repositories it was pulled from or pushed to
// ("registry/repo", most recent first, at most maxSources). Push reads it
// to mount a blob from another repository of the same registry instead of
// uploading it. An empty SourceDB records nothing. The file is opened for
// the length of one Record or Lookup only, so many berth processes can
// share it; each waits for the others' short write transactions.
type SourceDB string

const (
	maxSources    = 8
	sourcesBucket = "blob-sources"
)

func (s SourceDB) open() (*bolt.DB, error) {
	if err := os.MkdirAll(filepath.Dir(string(s)), 0o700); err != nil {
		return nil, fmt.Errorf("blob source db: %w", err)
	}
	db, err := bolt.Open(string(s), 0o600, &bolt.Options{Timeout: 30 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open blob source db %s: %w", string(s), err)
	}
	return db, nil
}

// Record notes that the blobs are present in repository repo of registry
// reg (repo without the registry: "library/busybox").
func (s SourceDB) Record(reg, repo string, blobs []digest.Digest) error {
	if s == "" || len(blobs) == 0 {
		return nil
	}
	db, err := s.open()
	if err != nil {
		return err
	}
	defer db.Close()
	src := reg + "/" + repo
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(sourcesBucket))
		if err != nil {
			return err
		}
		for _, d := range blobs {
			var list []string
			if v := b.Get([]byte(d)); v != nil {
				_ = json.Unmarshal(v, &list) // a damaged entry is rewritten
			}
			list = slices.DeleteFunc(list, func(x string) bool { return x == src })
			list = append([]string{src}, list...)
			if len(list) > maxSources {
				list = list[:maxSources]
			}
			v, err := json.Marshal(list)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(d), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record blob sources in %s: %w", string(s), err)
	}
	return nil
}

// Lookup returns the recorded sources of blob ("registry/repo", most recent
// first).
func (s SourceDB) Lookup(blob digest.Digest) ([]string, error) {
	m, err := s.lookupAll([]digest.Digest{blob})
	return m[blob], err
}

func (s SourceDB) lookupAll(blobs []digest.Digest) (map[digest.Digest][]string, error) {
	out := map[digest.Digest][]string{}
	if s == "" {
		return out, nil
	}
	if _, err := os.Stat(string(s)); os.IsNotExist(err) {
		return out, nil
	}
	db, err := s.open()
	if err != nil {
		return out, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(sourcesBucket))
		if b == nil {
			return nil
		}
		for _, d := range blobs {
			var list []string
			if v := b.Get([]byte(d)); v != nil && json.Unmarshal(v, &list) == nil {
				out[d] = list
			}
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("read blob sources in %s: %w", string(s), err)
	}
	return out, nil
}
