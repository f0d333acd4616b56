package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/image/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-content-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func blob(n int) ([]byte, ocispec.Descriptor) {
	b := make([]byte, n)
	rand.Read(b)
	return b, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(n)}
}

func TestWriteReadWalkDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b, desc := blob(100000)
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadBlob(ctx, s, desc)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read back: %v", err)
	}
	info, err := s.Info(ctx, desc.Digest)
	if err != nil || info.Size != desc.Size {
		t.Fatalf("info %+v %v", info, err)
	}
	if st, _ := os.Stat(filepath.Join(s.Root(), "blobs", "sha256", desc.Digest.Encoded())); st.Mode().Perm() != 0o444 {
		t.Errorf("blob mode %v, want read-only", st.Mode())
	}
	if _, err := s.Writer(ctx, desc); !errors.Is(err, content.ErrExists) {
		t.Fatalf("Writer of a committed blob: %v, want ErrExists", err)
	}
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(b)); err != nil {
		t.Fatalf("WriteBlob of an existing blob: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "ingest")); len(ents) != 0 {
		t.Errorf("ingest left behind: %v", ents)
	}
	bad := desc
	bad.Size++
	if _, err := s.ReaderAt(ctx, bad); err == nil || !strings.Contains(err.Error(), "descriptor says") {
		t.Errorf("ReaderAt with a wrong size: %v", err)
	}
	n := 0
	s.Walk(ctx, func(i content.Info) error { n++; return nil })
	if n != 1 {
		t.Errorf("walk saw %d blobs", n)
	}
	if err := s.Delete(ctx, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Info(ctx, desc.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Errorf("info after delete: %v", err)
	}
	if err := s.Delete(ctx, desc.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.Info(ctx, "sha256:xyz"); err == nil {
		t.Error("bad digest accepted")
	}
}

func TestCommitChecksDigestAndSize(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b, desc := blob(1000)
	// Wrong bytes of the right length: digest mismatch, ingest discarded.
	w, err := s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{'x'}, 1000)
	w.Write(other)
	err = w.Commit()
	if err == nil || !strings.Contains(err.Error(), desc.Digest.String()) || !strings.Contains(err.Error(), digest.FromBytes(other).String()) {
		t.Fatalf("commit of wrong bytes: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "ingest", desc.Digest.Encoded())); !os.IsNotExist(err) {
		t.Errorf("bad ingest kept: %v", err)
	}
	if _, err := s.Info(ctx, desc.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("bad blob published: %v", err)
	}
	// Too many bytes.
	w, _ = s.Writer(ctx, desc)
	if _, err := w.Write(append(b, 'x')); err == nil {
		t.Error("write past the size accepted")
	}
	w.Close()
	// Too few: error, kept for resuming.
	w, _ = s.Writer(ctx, desc)
	w.Write(b[:500])
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "got 500 bytes, expected 1000") {
		t.Fatalf("short commit: %v", err)
	}
	w.Close()
	w, _ = s.Writer(ctx, desc)
	if w.Offset() != 500 {
		t.Fatalf("resumed at %d, want 500", w.Offset())
	}
	w.Write(b[500:])
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentWritersOneBlob(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b, desc := blob(1 << 20)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s2, _ := New(s.Root()) // as another process would
			errs <- content.WriteBlob(ctx, s2, desc, bytes.NewReader(b))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := content.ReadBlob(ctx, s, desc)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "ingest")); len(ents) != 0 {
		t.Errorf("ingest left behind: %v", ents)
	}
}

func TestSecondWriterWaits(t *testing.T) {
	s := newStore(t)
	_, desc := blob(10)
	w, err := s.Writer(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Writer(ctx, desc); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second writer: %v, want it to wait until the deadline", err)
	}
}

func TestIngestUnknownDigest(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b, want := blob(300000)
	for range 2 {
		desc, err := content.Ingest(ctx, s, bytes.NewReader(b), "x/y")
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != want.Digest || desc.Size != want.Size || desc.MediaType != "x/y" {
			t.Fatalf("Ingest = %+v", desc)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "ingest")); len(ents) != 0 {
		t.Errorf("ingest left behind: %v", ents)
	}
	// A failing reader leaves nothing.
	_, err := content.Ingest(ctx, s, io.MultiReader(bytes.NewReader(b[:10]), errReader{}), "x/y")
	if err == nil {
		t.Fatal("failing reader accepted")
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "ingest")); len(ents) != 0 {
		t.Errorf("ingest left behind: %v", ents)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestKilledWriterResumes kills (SIGKILL) a child process in the middle of
// an ingest, then resumes the blob from where it stopped.
func TestKilledWriterResumes(t *testing.T) {
	if dir := os.Getenv("BERTH_CONTENT_CHILD"); dir != "" {
		childWrite(dir)
		return
	}
	ctx := context.Background()
	s := newStore(t)
	b, desc := blob(4 << 20)
	if err := os.WriteFile(filepath.Join(s.Root(), "blob.src"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterResumes$")
	cmd.Env = append(os.Environ(), "BERTH_CONTENT_CHILD="+s.Root(), "BERTH_CONTENT_DIGEST="+desc.Digest.String())
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child says when it has written half, then keeps the lock.
	buf := make([]byte, 5)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "half\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q %v", buf, err)
	}
	// While it lives, another writer waits.
	c2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := s.Writer(c2, desc); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("writer while the child holds the ingest: %v", err)
	}
	cancel()
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := s.Info(ctx, desc.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("blob visible after a killed ingest: %v", err)
	}
	w, err := s.Writer(ctx, desc)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 2<<20 {
		t.Fatalf("resumed at %d, want %d", w.Offset(), 2<<20)
	}
	w.Close()
	// WriteBlob skips what the ingest holds.
	if err := content.WriteBlob(ctx, s, desc, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadBlob(ctx, s, desc)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob after resume: %v", err)
	}
}

func childWrite(root string) {
	s, err := New(root)
	if err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(filepath.Join(root, "blob.src"))
	desc := ocispec.Descriptor{Digest: digest.Digest(os.Getenv("BERTH_CONTENT_DIGEST")), Size: int64(len(b))}
	w, err := s.Writer(context.Background(), desc)
	if err != nil {
		panic(err)
	}
	w.Write(b[:len(b)/2])
	fmt.Print("half\n")
	time.Sleep(time.Minute)
	os.Exit(3)
}

func TestPruneIngests(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	_, desc := blob(100)
	w, _ := s.Writer(ctx, desc)
	w.Write(make([]byte, 10))
	if n, _ := s.PruneIngests(ctx, 0); n != 0 {
		t.Errorf("pruned a held ingest")
	}
	w.Close()
	if n, _ := s.PruneIngests(ctx, time.Hour); n != 0 {
		t.Errorf("pruned a fresh ingest")
	}
	if n, _ := s.PruneIngests(ctx, 0); n != 1 {
		t.Errorf("pruned %d stale ingests, want 1", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "ingest")); len(ents) != 0 {
		t.Errorf("ingest left behind: %v", ents)
	}
}
