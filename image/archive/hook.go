package archive

import (
	"errors"
	"io"

	"github.com/berth-project/berth/internal/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LoadOptions tune LoadWith.
type LoadOptions struct {
	// Progress receives per-entry progress; nil shows none.
	Progress progress.Reporter
	// BlobHook, when set, receives each file entry of at least
	// HookMinSize bytes (the layers; configs and manifests are smaller)
	// while it is read and stored, so the caller can unpack it at once.
	// desc names the entry's digest when its path does (blobs/sha256/...),
	// and only its size otherwise. The reader ends with io.EOF only when
	// the hook saw the whole entry, which the store then committed
	// verified; it ends with an error otherwise (the entry was in the
	// store already, or storing it failed). What the hook did is valid
	// only if that reader ended with io.EOF. Hooks run in their own
	// goroutines, one per entry, while the archive is read on: an archive
	// is read once, so they must not block for long. LoadWith returns
	// after every hook has returned; a hook's error fails nothing.
	BlobHook func(desc ocispec.Descriptor, r io.Reader) error
}

// HookMinSize is the size from which an entry goes to LoadOptions.BlobHook.
const HookMinSize = 1 << 20

// errNotStored ends a hook's stream whose entry was not stored by this
// load (the store had it, or writing it failed).
var errNotStored = errors.New("archive entry not stored by this load")

// hookTee copies what is read through it into a hook's pipe; once the
// hook stops reading, it only reads.
type hookTee struct {
	r    io.Reader
	p    *asyncPipe
	n    int64
	dead bool
}

func (t *hookTee) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if n > 0 && !t.dead {
		if _, werr := t.p.Write(b[:n]); werr != nil {
			t.dead = true
		} else {
			t.n += int64(n)
		}
	}
	return n, err
}

// startHook runs the hook on a new pipe in its own goroutine.
func (l *loader) startHook(desc ocispec.Descriptor) *asyncPipe {
	p := newAsyncPipe(pipeBuffers)
	l.hooks.Add(1)
	go func() {
		defer l.hooks.Done()
		defer p.stopReading()
		_ = l.hook(desc, p)
	}()
	return p
}
