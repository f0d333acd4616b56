package archive

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

func TestAsyncPipeCarriesWritesAndReads(t *testing.T) {
	data := make([]byte, 3*pipeBufSize+12345)
	rand.Read(data)
	for _, viaReadFrom := range []bool{false, true} {
		p := newAsyncPipe(2)
		go func() {
			var err error
			if viaReadFrom {
				_, err = p.ReadFrom(bytes.NewReader(data))
			} else {
				for b := data; len(b) > 0 && err == nil; b = b[min(len(b), 70000):] {
					_, err = p.Write(b[:min(len(b), 70000)])
				}
			}
			p.CloseWithError(err)
		}()
		got, err := io.ReadAll(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadFrom %v: read %d bytes (want %d), err %v", viaReadFrom, len(got), len(data), err)
		}
	}
}

func TestReadaheadCloseEarly(t *testing.T) {
	src := io.NopCloser(io.LimitReader(zeros{}, 64*pipeBufSize))
	ra := newReadahead(src)
	buf := make([]byte, 10)
	if _, err := io.ReadFull(ra, buf); err != nil {
		t.Fatal(err)
	}
	// Closing with most of the stream unread must not hang the filler.
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	p := newAsyncPipe(1)
	p.stopReading()
	if _, err := p.ReadFrom(zeros{}); !errors.Is(err, errReaderGone) {
		t.Fatalf("ReadFrom after the reader stopped: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }
