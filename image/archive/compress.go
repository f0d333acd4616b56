package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// compression is how a stream is compressed.
type compression int

const (
	uncompressed compression = iota
	compressGzip
	compressZstd
	compressBzip2
	compressXz
)

func (c compression) String() string {
	switch c {
	case compressGzip:
		return "gzip"
	case compressZstd:
		return "zstd"
	case compressBzip2:
		return "bzip2"
	case compressXz:
		return "xz"
	}
	return "uncompressed"
}

// detect reads the compression from a stream's first bytes.
func detect(p []byte) compression {
	switch {
	case bytes.HasPrefix(p, []byte{0x1f, 0x8b}):
		return compressGzip
	case bytes.HasPrefix(p, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return compressZstd
	case bytes.HasPrefix(p, []byte("BZh")):
		return compressBzip2
	case bytes.HasPrefix(p, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return compressXz
	}
	return uncompressed
}

// decompress returns the decompressed stream of r, compressed with c.
func decompress(r io.Reader, c compression) (io.ReadCloser, error) {
	switch c {
	case uncompressed:
		return io.NopCloser(r), nil
	case compressGzip:
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return z, nil
	case compressZstd:
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zstdCloser{z}, nil
	case compressBzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("%s compression is not supported (decompress the archive first)", c)
}

type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }

// autoDecompress detects the compression of r and returns its decompressed
// stream, read ahead by a goroutine when compressed so that decompression
// runs beside whatever consumes the stream (hashing, writing).
func autoDecompress(r io.Reader) (io.ReadCloser, compression, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	c := detect(head)
	d, err := decompress(br, c)
	if err != nil {
		return nil, c, err
	}
	if c == uncompressed {
		return d, c, nil
	}
	return newReadahead(d), c, nil
}

const (
	readaheadChunk = 1 << 20
	readaheadDepth = 4
)

// readahead reads src in a goroutine, up to readaheadDepth chunks ahead.
type readahead struct {
	src  io.ReadCloser
	full chan []byte
	free chan []byte
	stop chan struct{}
	wg   sync.WaitGroup
	err  error // set by the goroutine before it closes full
	cur  []byte
	buf  []byte // the chunk cur is a slice of, returned to free when used up
	once sync.Once
}

func newReadahead(src io.ReadCloser) *readahead {
	ra := &readahead{
		src:  src,
		full: make(chan []byte, readaheadDepth),
		free: make(chan []byte, readaheadDepth+1),
		stop: make(chan struct{}),
	}
	for i := 0; i < readaheadDepth+1; i++ {
		ra.free <- make([]byte, readaheadChunk)
	}
	ra.wg.Add(1)
	go ra.fill()
	return ra
}

func (ra *readahead) fill() {
	defer ra.wg.Done()
	defer close(ra.full)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(ra.src, buf)
		if n > 0 {
			select {
			case ra.full <- buf[:n]:
			case <-ra.stop:
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			ra.err = err
			return
		}
	}
}

func (ra *readahead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		b, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.buf, ra.cur = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

func (ra *readahead) Close() error {
	ra.once.Do(func() {
		close(ra.stop)
		ra.wg.Wait()
	})
	return ra.src.Close()
}
