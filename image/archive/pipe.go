package archive

import (
	"errors"
	"io"
	"sync"
)

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

// newAsyncPipe makes a pipe of n buffers of pipeBufSize.
func newAsyncPipe(n int) *asyncPipe {
	p := &asyncPipe{full: make(chan []byte, n), free: make(chan []byte, n), gone: make(chan struct{})}
	for range n {
		p.free <- nil // allocated on first use
	}
	return p
}

// buffer waits for a free buffer; false once the reader has stopped.
func (p *asyncPipe) buffer() ([]byte, bool) {
	select {
	case buf := <-p.free:
		if buf == nil {
			buf = make([]byte, pipeBufSize)
		}
		return buf[:cap(buf)], true
	case <-p.gone:
		return nil, false
	}
}

// send hands a filled buffer to the reader; false once it has stopped.
func (p *asyncPipe) send(buf []byte) bool {
	select {
	case p.full <- buf:
		return true
	case <-p.gone:
		return false
	}
}

var errReaderGone = errors.New("reader stopped")

// Write copies b into the pipe's buffers.
func (p *asyncPipe) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		buf, ok := p.buffer()
		if !ok {
			return n, errReaderGone
		}
		k := copy(buf, b)
		if !p.send(buf[:k]) {
			return n, errReaderGone
		}
		n += k
		b = b[k:]
	}
	return n, nil
}

// ReadFrom reads r into the pipe's buffers (no copy through a caller's
// buffer) until r ends (nil error) or fails, or the reader stops.
func (p *asyncPipe) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for {
		buf, ok := p.buffer()
		if !ok {
			return n, errReaderGone
		}
		k, err := io.ReadFull(r, buf)
		if k > 0 && !p.send(buf[:k]) {
			return n, errReaderGone
		}
		n += int64(k)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
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
