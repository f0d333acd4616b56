package archive

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

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

// readaheadDepth is how many chunks (of pipeBufSize) are read ahead.
const readaheadDepth = 5

// readahead reads src in a goroutine, up to readaheadDepth chunks ahead.
type readahead struct {
	*asyncPipe
	src  io.ReadCloser
	done chan struct{}
}

func newReadahead(src io.ReadCloser) *readahead {
	ra := &readahead{asyncPipe: newAsyncPipe(readaheadDepth), src: src, done: make(chan struct{})}
	go func() {
		defer close(ra.done)
		_, err := ra.ReadFrom(src)
		ra.CloseWithError(err)
	}()
	return ra
}

// Close stops the read-ahead and closes src.
func (ra *readahead) Close() error {
	ra.stopReading()
	<-ra.done
	return ra.src.Close()
}
