package snapshottest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/storage/snapshot"
)

// testIDMapped mounts a container snapshot for a user namespace mapping
// container IDs 0-65535 to host IDs 100000-165535 (as --userns does):
// the container's root owns the image's root files, what it writes is
// stored with its own IDs, and the layers on disk are left alone.
func testIDMapped(t *testing.T, h *harness) {
	const base = 100000
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: base, Size: 65536}}
	h.layer("l1", "", layer1(t))
	h.layer("l2", "l1", layer2(t))
	h.prepare("c", "l2")
	mounts, err := h.s.Mounts("c")
	if err != nil {
		t.Fatal(err)
	}
	// The container's processes reach the mount by its path.
	if err := os.Chmod(h.base, 0o755); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(h.base, "mapped")
	if err := os.Mkdir(c, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.MountAllIDMapped(mounts, c, maps, maps); err != nil {
		t.Fatalf("mount id-mapped: %v", err)
	}
	defer h.unmount(c)

	owner := func(p string) (uint32, uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(c, p), &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid, st.Gid
	}
	for p, want := range map[string]uint32{".": base, "b": base, "keep": base + 1000, "d/y": base, "sl": base} {
		if uid, gid := owner(p); uid != want || gid != want {
			t.Errorf("/%s is owned by %d:%d, want %d:%d", p, uid, gid, want, want)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The container's root (host uid base) writes: a new file, a
	// copied-up file, a removal, a directory; then chowns (as a
	// container's root may, CAP_CHOWN in its namespace).
	asUser(t, base, func() {
		must(os.WriteFile(c+"/new", []byte("new"), 0o644))
		must(os.WriteFile(c+"/b", []byte("B2"), 0o644))
		must(os.Remove(c + "/keep"))
		must(os.Mkdir(c+"/nd", 0o755))
	})
	if uid, _ := owner("new"); uid != base {
		t.Errorf("/new was created owned by %d, want %d", uid, base)
	}
	must(os.Lchown(c+"/new", base+5, base+5))
	must(os.Lchown(c+"/nd", base+7, base+8))
	if uid, _ := owner("new"); uid != base+5 {
		t.Errorf("/new is owned by %d after chown to %d", uid, base+5)
	}
	// An ID the namespace does not map cannot be stored.
	if err := os.Lchown(c+"/new", 7, 7); err == nil {
		t.Errorf("chown to the unmapped host uid 7 succeeded")
	}
	h.unmount(c)

	var diff bytes.Buffer
	must(h.s.Diff("c", &diff))
	got := map[string][2]int{}
	tr := tar.NewReader(&diff)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		got[strings.TrimSuffix(hdr.Name, "/")] = [2]int{hdr.Uid, hdr.Gid}
	}
	for name, want := range map[string][2]int{"new": {5, 5}, "b": {0, 0}, "nd": {7, 8}, ".wh.keep": {0, 0}} {
		if ids, ok := got[name]; !ok || (name != ".wh.keep" && ids != want) {
			t.Errorf("diff entry %s: %v (present %v), want ids %v; diff holds %v", name, ids, ok, want, got)
		}
	}
	// The layers themselves are unchanged: a plain mount shows the
	// image's IDs.
	plain := h.mount(h.view("v", "l2"))
	var st unix.Stat_t
	must(unix.Lstat(plain+"/keep", &st))
	if st.Uid != 1000 {
		t.Errorf("layer file keep is owned by %d after the id-mapped use, want 1000", st.Uid)
	}
}

// asUser runs fn with the thread's filesystem uid and gid set to id,
// as a process of the container would create files.
func asUser(t *testing.T, id int, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread ends with the goroutine: its changed IDs go with it.
		runtime.LockOSThread()
		unix.Setfsgid(id)
		unix.Setfsuid(id)
		fn()
	}()
	<-done
}
