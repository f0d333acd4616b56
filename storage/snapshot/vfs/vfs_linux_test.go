package vfs

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/snapshottest"
)

func newSnapshotter(root string) (snapshot.Snapshotter, error) { return New(root) }

func TestVFS(t *testing.T) { snapshottest.Run(t, newSnapshotter) }

func BenchmarkContainerRootfs(b *testing.B) { snapshottest.Benchmark(b, newSnapshotter) }

// The vfs tree takes plain removals, and a base layer's Diff is the whole
// tree.
func TestApplyDirMergedTree(t *testing.T) {
	s, err := New(filepath.Join(t.TempDir(), "berth-vfs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare("k", "", nil); err != nil {
		t.Fatal(err)
	}
	dir, overlay, err := s.ApplyDir("k")
	if err != nil || overlay {
		t.Fatalf("ApplyDir: %q %v %v, want a merged tree", dir, overlay, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Diff("k", &buf); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != "f" {
		t.Fatalf("diff of a base: first entry %+v %v, want f", hdr, err)
	}
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
}
