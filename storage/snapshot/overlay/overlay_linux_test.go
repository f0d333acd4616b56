package overlay

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/snapshottest"
)

func newSnapshotter(root string) (snapshot.Snapshotter, error) { return New(root) }

func TestOverlay(t *testing.T) { snapshottest.Run(t, newSnapshotter) }

func BenchmarkContainerRootfs(b *testing.B) { snapshottest.Benchmark(b, newSnapshotter) }

// A root path longer than fsconfig's 256-byte values still mounts
// (through /proc/self/fd), and ApplyDir takes overlay whiteouts.
func TestLongRootPath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	base, err := os.MkdirTemp("", "berth-overlay-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	root := filepath.Join(base, strings.Repeat("r", 200), strings.Repeat("o", 100))
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	for i, parent := range []string{"", "l0"} {
		key := fmt.Sprintf("l%d", i)
		if _, err := s.Prepare(key+"-unpack", parent, nil); err != nil {
			t.Fatal(err)
		}
		dir, overlay, err := s.ApplyDir(key + "-unpack")
		if err != nil || !overlay {
			t.Fatalf("ApplyDir: %q %v %v, want an overlay upper", dir, overlay, err)
		}
		if err := os.WriteFile(filepath.Join(dir, key), []byte(key), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(key, key+"-unpack", nil); err != nil {
			t.Fatal(err)
		}
	}
	mounts, err := s.Prepare("c", "l1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 || mounts[0].Type != "overlay" {
		t.Fatalf("mounts %+v, want one overlay", mounts)
	}
	target := filepath.Join(base, "mnt")
	os.Mkdir(target, 0o755)
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"l0", "l1"} {
		if b, err := os.ReadFile(filepath.Join(target, f)); err != nil || string(b) != f {
			t.Errorf("/%s = %q (%v)", f, b, err)
		}
	}
	if err := snapshot.UnmountAll(target); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"c", "l1", "l0"} {
		if err := s.Remove(k); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadRoot(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "berth:overlay"))
	if err == nil || !strings.Contains(err.Error(), "must not contain ':'") {
		t.Fatalf("New with ':' in the root: %v, want an error naming it", err)
	}
}
