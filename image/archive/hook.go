package archive

import (
	"errors"
	"io"
	"sync"

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

// asyncPipe hands the bytes written to it to a reader in another
// goroutine through a few buffers, so that the writer runs on while the
// reader works (io.Pipe would make each write wait for the reader). A
// reader that stops early makes later writes fail.
type asyncPipe struct {
	full chan []byte
	free chan []byte
	gone chan struct{} // closed when the reader stops
	once sync.Once
	err  error // what the reader gets after the data; set before full closes
	cur  []byte
	last []byte // the buffer cur is a part of, to recycle
}

const (
	pipeBuffers = 8
	pipeBufSize = 1 << 20
)

func newAsyncPipe() *asyncPipe {
	p := &asyncPipe{full: make(chan []byte, pipeBuffers), free: make(chan []byte, pipeBuffers), gone: make(chan struct{})}
	for range pipeBuffers {
		p.free <- nil // allocated on first use
	}
	return p
}

var errReaderGone = errors.New("reader stopped")

// Write copies b into the pipe's buffers.
func (p *asyncPipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		var buf []byte
		select {
		case buf = <-p.free:
		case <-p.gone:
			return n, errReaderGone
		}
		if buf == nil {
			buf = make([]byte, pipeBufSize)
		}
		k := copy(buf[:cap(buf)], b)
		select {
		case p.full <- buf[:k]:
		case <-p.gone:
			return n, errReaderGone
		}
		n += k
		b = b[k:]
	}
	return n, nil
}

// CloseWithError ends the data; the reader gets err (io.EOF when nil)
// once it has read everything written.
func (p *asyncPipe) CloseWithError(err error) {
	if err == nil {
		err = io.EOF
	}
	p.err = err
	close(p.full)
}

// Read implements io.Reader for the receiving goroutine.
func (p *asyncPipe) Read(b []byte) (int, error) {
	if len(p.cur) == 0 {
		if p.last != nil {
			p.free <- p.last[:0]
			p.last = nil
		}
		buf, ok := <-p.full
		if !ok {
			return 0, p.err
		}
		p.cur, p.last = buf, buf
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// stopReading tells the writer that nothing more will be read.
func (p *asyncPipe) stopReading() { p.once.Do(func() { close(p.gone) }) }

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
	p := newAsyncPipe()
	l.hooks.Add(1)
	go func() {
		defer l.hooks.Done()
		defer p.stopReading()
		_ = l.hook(desc, p)
	}()
	return p
}
