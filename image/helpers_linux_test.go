package image

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/internal/testutil"
	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/overlay"
	"github.com/berth-project/berth/storage/snapshot/vfs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// tempRoot is a berth root for one test, removed afterwards.
func tempRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-image-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newSnapshotter(t testing.TB, root, driver string) snapshot.Snapshotter {
	t.Helper()
	var sn snapshot.Snapshotter
	var err error
	switch driver {
	case "overlay":
		sn, err = overlay.New(filepath.Join(root, "snapshots", "overlay"))
	case "vfs":
		sn, err = vfs.New(filepath.Join(root, "snapshots", "vfs"))
	default:
		t.Fatalf("no driver %q", driver)
	}
	if err != nil {
		t.Fatalf("%s snapshotter: %v", driver, err)
	}
	return sn
}

// newService opens a store under a fresh root with the given driver.
func newService(t testing.TB, driver string, opts Options) *Service {
	t.Helper()
	testutil.RequireRoot(t, "it unpacks images into snapshots")
	root := tempRoot(t)
	return openAt(t, root, driver, opts)
}

func openAt(t testing.TB, root, driver string, opts Options) *Service {
	t.Helper()
	opts.Snapshotter = newSnapshotter(t, root, driver)
	s, err := Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sharedLayout is ../shared/images/oci, found from the repository root.
func sharedLayout(t testing.TB) string {
	t.Helper()
	return filepath.Join(testutil.SharedImages(t), "oci")
}

// layoutManifests returns the manifests of the layout by ref name.
func layoutManifests(t testing.TB, layout string) map[string]ocispec.Descriptor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	out := map[string]ocispec.Descriptor{}
	for _, m := range idx.Manifests {
		out[m.Annotations[ocispec.AnnotationRefName]] = m
	}
	return out
}

// copyBlobs writes every blob of the layout, or only those named, into
// the store through the content API.
func copyBlobs(t testing.TB, s *Service, layout string, only ...string) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(layout, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, o := range only {
		want[strings.TrimPrefix(o, "sha256:")] = true
	}
	for _, e := range ents {
		if len(only) > 0 && !want[e.Name()] {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		desc := ocispec.Descriptor{Digest: digest.Digest("sha256:" + e.Name()), Size: st.Size()}
		err = content.WriteBlob(ctx, s.Content(), desc, f)
		f.Close()
		if err != nil {
			t.Fatalf("copy blob %s: %v", e.Name(), err)
		}
	}
}

// registerShared copies the shared layout's blobs and registers its
// images under their names.
func registerShared(t testing.TB, s *Service, names ...string) map[string]*Image {
	t.Helper()
	layout := sharedLayout(t)
	copyBlobs(t, s, layout)
	out := map[string]*Image{}
	for name, m := range layoutManifests(t, layout) {
		if len(names) > 0 && !contains(names, name) {
			continue
		}
		img, err := s.Register(context.Background(), m, []string{name})
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		out[name] = img
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mountImage mounts a read-only view of the image's layers and returns
// its directory; everything is undone at cleanup.
func mountImage(t testing.TB, s *Service, img *Image) string {
	t.Helper()
	key := "berth-test-view-" + img.ShortID() + "-" + strings.ReplaceAll(t.Name(), "/", "-")
	mounts, err := s.Snapshotter().View(key, img.TopChainID(), nil)
	if err != nil {
		t.Fatalf("view %s: %v", img.ID, err)
	}
	target, err := os.MkdirTemp("", "berth-image-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshot.MountAll(mounts, target); err != nil {
		t.Fatalf("mount view: %v", err)
	}
	t.Cleanup(func() {
		if err := snapshot.UnmountAll(target); err != nil {
			t.Error(err)
		}
		os.Remove(target)
		s.Snapshotter().Remove(key)
	})
	return target
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkLayersImage asserts what ../shared/images/README.md says layers:1
// looks like once unpacked.
func checkLayersImage(t testing.TB, root string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, "data/gone")); !os.IsNotExist(err) {
		t.Errorf("/data/gone exists (%v)", err)
	}
	ents, err := os.ReadDir(filepath.Join(root, "data/opaque"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "c" {
		t.Errorf("/data/opaque holds %v, want only c", ents)
	}
	for p, want := range map[string]string{"data/opaque/c": "new", "data/keep/a": "changed", "data/hard": "one"} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(root, p))); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "data/link")); err != nil || l != "/data/keep/a" {
		t.Errorf("/data/link -> %q (%v), want /data/keep/a", l, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "data/hard"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("/data/hard: mode %o %v, want a regular file", st.Mode, err)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "data/emptydir")); err != nil || len(ents) != 0 {
		t.Errorf("/data/emptydir: %v %v, want an empty directory", ents, err)
	}
	if err := unix.Lstat(filepath.Join(root, "bin/busybox"), &st); err != nil || st.Mode&0o7777 != 0o4755 {
		t.Errorf("/bin/busybox mode %o (%v), want 4755", st.Mode&0o7777, err)
	}
	if err := unix.Lstat(filepath.Join(root, "home/app/work"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("/home/app/work owned by %d:%d (%v), want 1000:1000", st.Uid, st.Gid, err)
	}
	if !strings.Contains(readFile(t, filepath.Join(root, "usr/local/bin/hello")), "hello from layers image") {
		t.Errorf("/usr/local/bin/hello is not the image's script")
	}
}
