package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/storage/snapshot"
)

// stagedKeys lists the temporary snapshots staging left.
func stagedKeys(t testing.TB, s *Service) []string {
	t.Helper()
	var out []string
	s.Snapshotter().Walk(func(i snapshot.Info) error {
		if strings.HasPrefix(i.Key, unpackPrefix) {
			out = append(out, i.Key)
		}
		return nil
	})
	return out
}

// TestStagerUnpack stages the layers of layers:1 top first, as a pull
// unpacking while it downloads does (parents not there yet), then unpacks
// the image with them: the result is the image, and nothing staged is
// left. A stream whose reader fails at its end (a blob that failed
// verification) and a stream that is no layer stage nothing.
func TestStagerUnpack(t *testing.T) {
	s := newService(t, "overlay", Options{})
	img := registerShared(t, s, "layers:1")["layers:1"]
	layout := sharedLayout(t)
	blob := func(i int) []byte {
		b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", img.Layers[i].Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	st, err := s.NewStager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Layer 3 fails at its very end: not staged, extracted by Unpack.
	bad := &failAtEnd{r: bytes.NewReader(blob(2)), err: errors.New("blob digest mismatch")}
	if err := st.Stage(ctx, img.Layers[2].Digest, bad); err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Errorf("stage of a failing stream: %v, want its reader's error", err)
	}
	if bad.n != int64(len(blob(2))) {
		t.Errorf("stage read %d of the %d bytes of a failing stream", bad.n, len(blob(2)))
	}
	if st.has(img.DiffIDs[2]) {
		t.Error("a stream that failed at its end was staged")
	}
	for _, i := range []int{3, 1, 0} {
		if err := st.Stage(ctx, img.Layers[i].Digest, bytes.NewReader(blob(i))); err != nil {
			t.Fatalf("stage layer %d: %v", i+1, err)
		}
		if !st.has(img.DiffIDs[i]) {
			t.Fatalf("layer %d not staged under its diff ID", i+1)
		}
	}
	// Not a layer: no error, nothing staged.
	if err := st.Stage(ctx, "", strings.NewReader(strings.Repeat("not a tar ", 1000))); err != nil {
		t.Errorf("stage of garbage: %v", err)
	}
	if got := len(stagedKeys(t, s)); got != 3 {
		t.Errorf("%d temporary snapshots, want the 3 staged layers", got)
	}
	if _, err := s.Unpack(ctx, img, WithStaged(st)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if got := committedLayers(t, s); len(got) != 4 {
		t.Errorf("%d committed layers, want 4", len(got))
	}
	for i, c := range img.ChainIDs {
		info, err := s.Snapshotter().Stat(c.String())
		if err != nil {
			t.Fatal(err)
		}
		if info.Labels[LabelDiffID] != img.DiffIDs[i].String() {
			t.Errorf("layer %d: diff ID label %q", i+1, info.Labels[LabelDiffID])
		}
		want := ""
		if i > 0 {
			want = img.ChainIDs[i-1].String()
		}
		if info.Parent != want {
			t.Errorf("layer %d: parent %q, want %q", i+1, info.Parent, want)
		}
	}
	checkLayersImage(t, mountImage(t, s, img))
	if left := stagedKeys(t, s); len(left) != 0 {
		t.Errorf("temporary snapshots left: %v", left)
	}
}

// TestStagerUnclaimed: layers staged that no image claims are removed by
// Close, and those a killed process left are swept by the next Unpack.
func TestStagerUnclaimed(t *testing.T) {
	s := newService(t, "overlay", Options{})
	img := registerShared(t, s, "layers:1")["layers:1"]
	layout := sharedLayout(t)
	f, err := os.Open(filepath.Join(layout, "blobs", "sha256", img.Layers[1].Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := s.NewStager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Stage(ctx, img.Layers[1].Digest, f); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if left := stagedKeys(t, s); len(left) != 0 {
		t.Errorf("Close left %v", left)
	}

	// A process killed after staging: its temporary snapshot stays until
	// the next Unpack with no lease held.
	st, err = s.NewStager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekStart)
	if err := st.Stage(ctx, img.Layers[1].Digest, f); err != nil {
		t.Fatal(err)
	}
	st.release() // as the kernel does for a killed process's flock
	if left := stagedKeys(t, s); len(left) != 1 {
		t.Fatalf("staged %v", left)
	}
	if _, err := s.Unpack(ctx, img); err != nil {
		t.Fatal(err)
	}
	if left := stagedKeys(t, s); len(left) != 0 {
		t.Errorf("Unpack did not sweep %v", left)
	}
	checkLayersImage(t, mountImage(t, s, img))
}

// TestStagerVFS: with a snapshotter that is not overlay-style, Stage only
// reads its stream, and Unpack extracts every layer itself.
func TestStagerVFS(t *testing.T) {
	s := newService(t, "vfs", Options{})
	img := registerShared(t, s, "layers:1")["layers:1"]
	ra, err := s.Content().ReaderAt(ctx, img.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	st, err := s.NewStager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &failAtEnd{r: io.NewSectionReader(ra, 0, ra.Size())}
	if err := st.Stage(ctx, img.Layers[0].Digest, r); err != nil {
		t.Fatal(err)
	}
	if r.n != ra.Size() || st.has(img.DiffIDs[0]) {
		t.Errorf("vfs stage: read %d of %d bytes, staged %v", r.n, ra.Size(), st.has(img.DiffIDs[0]))
	}
	if _, err := s.Unpack(ctx, img, WithStaged(st)); err != nil {
		t.Fatal(err)
	}
	checkLayersImage(t, mountImage(t, s, img))
}

// failAtEnd reads r, then returns err (io.EOF when nil).
type failAtEnd struct {
	r   io.Reader
	err error
	n   int64
}

func (f *failAtEnd) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.n += int64(n)
	if err == io.EOF && f.err != nil {
		return n, f.err
	}
	return n, err
}
