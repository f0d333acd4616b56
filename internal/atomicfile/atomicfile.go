// Package atomicfile replaces files whole: a reader (or a process that
// starts after a kill -9) sees the old content or the new, never part.
package atomicfile

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// WriteFile replaces path with data; the file's mode is exactly perm
// (whatever the umask: berth hands these files to containers and other
// programs). With sync the data is on disk before the rename, so a
// crash of the machine too leaves the old file or the new one.
func WriteFile(path string, data []byte, perm os.FileMode, sync bool) error {
	return Write(path, perm, sync, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// Write replaces path with what fill writes into a new file beside it.
// If fill fails, path is left as it was and the new file removed.
func Write(path string, perm os.FileMode, sync bool, fill func(f *os.File) error) error {
	f, err := create(path, perm)
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		err = fill(f)
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// create makes a new hidden file in path's directory, named after it.
func create(path string, perm os.FileMode) (*os.File, error) {
	dir, base := filepath.Split(path)
	for range 100 {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(uint64(rand.Uint32()), 36))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, &fs.PathError{Op: "create temporary file for", Path: path, Err: fs.ErrExist}
}
