// Package snapshottest is the conformance suite every berth snapshotter
// passes. It checks behaviour by really mounting what the driver returns
// (so it needs root): layer chains, whiteouts and opaque directories,
// read-only views, Diff round trips, removal rules, metadata, concurrency
// from many goroutines and two store instances, a 128-layer chain, disk
// usage, the shared layers:1 image, and recovery after kill -9 at each
// step of an operation. Every subtest also checks that nothing stays
// mounted and nothing stays in the driver's root once all snapshots are
// removed.
//
// It imports storage/snapshot, its internal store (for the crash hook)
// and storage/archive; only tests import it.
package snapshottest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
	"github.com/berth-project/berth/storage/snapshot"
)

// Run runs the conformance suite against the snapshotters that
// newSnapshotter makes (one per subtest, on a fresh root directory; it may
// be called again on the same root, as another process would). A driver's
// New is newSnapshotter, as for Benchmark.
func Run(t *testing.T, newSnapshotter func(root string) (snapshot.Snapshotter, error)) {
	mustNew := func(t *testing.T, root string) snapshot.Snapshotter {
		t.Helper()
		s, err := newSnapshotter(root)
		if err != nil {
			t.Fatalf("new snapshotter: %v", err)
		}
		return s
	}
	if os.Getenv(envCrash) != "" {
		crashChild(t, mustNew)
		return
	}
	testutil.RequireRoot(t, "the snapshotter conformance suite mounts filesystems")
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"LayersAndWhiteouts", testLayers},
		{"ReadOnlyViews", testViews},
		{"DiffRoundTrip", testDiffRoundTrip},
		{"RemoveInUse", testRemoveInUse},
		{"StatWalkLabels", testStatWalkLabels},
		{"Errors", testErrors},
		{"ConcurrentPrepare", testConcurrent},
		{"LongChain", testLongChain},
		{"Usage", testUsage},
		{"LayersImage", testLayersImage},
		{"IDMapped", testIDMapped},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newHarness(t, mustNew)) })
	}
	t.Run("Crash", func(t *testing.T) { testCrash(t, mustNew) })
}

// The three layers most subtests stack.
func layer1(t testing.TB) []byte {
	return tarOf(t,
		file("a", "A"), dir("d"), file("d/x", "X"), file("d/y", "Y"), dir("d/sub"), file("d/sub/z", "Z"),
		dir("o"), file("o/p", "P"), file("o/q", "Q"),
		ent{name: "keep", typ: '0', body: "K", mode: 0o640, uid: 1000, gid: 1000, xattrs: map[string]string{"user.berth": "k"}},
		ent{name: "hl", typ: '1', link: "a"},
		ent{name: "sl", typ: '2', link: "a", mode: 0o777},
		ent{name: "fifo", typ: '6', mode: 0o600},
		dir("dev"), ent{name: "dev/null", typ: '3', mode: 0o666, major: 1, minor: 3},
		ent{name: "suid", typ: '0', body: "S", mode: 0o4755},
	)
}

func layer2(t testing.TB) []byte {
	return tarOf(t,
		whiteout("a"), whiteout("d/x"), whiteout("d/sub"),
		dir("o"), opaque("o"), file("o/r", "R"),
		file("b", "B"), ent{name: "keep", typ: '0', body: "K2", mode: 0o600, uid: 1000, gid: 1000},
	)
}

func layer3(t testing.TB) []byte {
	return tarOf(t, file("a", "A3"), file("o/s", "S"))
}

func testLayers(t *testing.T, h *harness) {
	h.layer("l1", "", layer1(t))
	h.layer("l2", "l1", layer2(t))
	h.layer("l3", "l2", layer3(t))
	c := h.mount(h.prepare("c", "l3"))

	for p, want := range map[string]string{"a": "A3", "b": "B", "d/y": "Y", "keep": "K2", "hl": "A", "o/r": "R", "o/s": "S"} {
		if got := readFile(t, c+"/"+p); got != want {
			t.Errorf("/%s = %q, want %q", p, got, want)
		}
	}
	assertMissing(t, c+"/d/x")
	assertMissing(t, c+"/d/sub")
	if got := dirNames(t, c+"/o"); strings.Join(got, ",") != "r,s" {
		t.Errorf("/o holds %v, want only r and s (opaque in layer 2)", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(c+"/keep", &st); err != nil || st.Mode&0o7777 != 0o600 || st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("/keep: mode %o owner %d:%d (%v), want 600 1000:1000", st.Mode&0o7777, st.Uid, st.Gid, err)
	}
	if err := unix.Lstat(c+"/suid", &st); err != nil || st.Mode&0o7777 != 0o4755 {
		t.Errorf("/suid: mode %o (%v), want 4755", st.Mode&0o7777, err)
	}
	if err := unix.Lstat(c+"/dev/null", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("/dev/null: mode %o rdev %d:%d (%v), want char 1:3", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), err)
	}
	if err := unix.Lstat(c+"/fifo", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("/fifo: mode %o (%v), want a FIFO", st.Mode, err)
	}
	if l, err := os.Readlink(c + "/sl"); err != nil || l != "a" {
		t.Errorf("/sl -> %q (%v), want a", l, err)
	}
	// The container writes: a new file, a change and a removal of lower
	// files; the layers stay as they were.
	if err := os.WriteFile(c+"/new", []byte("N"), 0o644); err != nil {
		t.Fatalf("write in the container's root: %v", err)
	}
	if err := os.WriteFile(c+"/b", []byte("B!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(c + "/d/y"); err != nil {
		t.Fatal(err)
	}
	v := h.mount(h.view("v2", "l2"))
	for p, want := range map[string]string{"b": "B", "d/y": "Y"} {
		if got := readFile(t, v+"/"+p); got != want {
			t.Errorf("view of l2: /%s = %q, want %q", p, got, want)
		}
	}
	assertMissing(t, v+"/a")
	assertMissing(t, v+"/new")
	v1 := h.mount(h.view("v1", "l1"))
	if got := dirNames(t, v1+"/o"); strings.Join(got, ",") != "p,q" {
		t.Errorf("view of l1: /o holds %v, want p and q", got)
	}
	if got := readFile(t, v1+"/a"); got != "A" {
		t.Errorf("view of l1: /a = %q, want A", got)
	}
	// The same snapshot mounted again (Mounts) shows the container's
	// changes.
	m, err := h.s.Mounts("c")
	if err != nil {
		t.Fatal(err)
	}
	c2 := h.mount(m)
	if got := readFile(t, c2+"/new"); got != "N" {
		t.Errorf("second mount of c: /new = %q, want N", got)
	}
	assertMissing(t, c2+"/d/y")
}

func testViews(t *testing.T, h *harness) {
	h.layer("l1", "", layer1(t))
	h.layer("l2", "l1", layer2(t))
	h.layer("l3", "l2", layer3(t))
	for _, tc := range []struct{ key, parent, file, want string }{
		{"v3", "l3", "a", "A3"}, // several lowers
		{"v1", "l1", "a", "A"},  // one lower
		{"v0", "", "", ""},      // empty
	} {
		mounts := h.view(tc.key, tc.parent)
		again, err := h.s.Mounts(tc.key)
		if err != nil {
			t.Fatalf("mounts of %s: %v", tc.key, err)
		}
		if fmt.Sprint(again) != fmt.Sprint(mounts) {
			t.Errorf("Mounts(%s) = %v, View gave %v", tc.key, again, mounts)
		}
		v := h.mount(mounts)
		if tc.file != "" {
			if got := readFile(t, v+"/"+tc.file); got != tc.want {
				t.Errorf("view %s: /%s = %q, want %q", tc.key, tc.file, got, tc.want)
			}
			if err := os.WriteFile(v+"/"+tc.file, []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
				t.Errorf("view %s: overwriting /%s: %v, want EROFS", tc.key, tc.file, err)
			}
		}
		if err := os.WriteFile(v+"/newfile", []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("view %s: creating a file: %v, want EROFS", tc.key, err)
		}
		if err := os.Mkdir(v+"/newdir", 0o755); !errors.Is(err, syscall.EROFS) {
			t.Errorf("view %s: mkdir: %v, want EROFS", tc.key, err)
		}
		if info, err := h.s.Stat(tc.key); err != nil || info.Kind != snapshot.KindView {
			t.Errorf("stat %s: %+v %v, want a view", tc.key, info, err)
		}
		if _, _, err := h.s.ApplyDir(tc.key); err == nil {
			t.Errorf("ApplyDir of view %s: no error", tc.key)
		}
	}
}

func testDiffRoundTrip(t *testing.T, h *harness) {
	h.layer("l1", "", layer1(t))
	h.layer("l2", "l1", layer2(t))
	c := h.mount(h.prepare("c", "l2"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(c+"/new", []byte("new file"), 0o644))
	must(os.WriteFile(c+"/b", []byte("B changed"), 0o644))
	must(os.Remove(c + "/keep"))
	must(os.RemoveAll(c + "/d"))
	must(os.MkdirAll(c+"/nd/deeper", 0o750))
	must(os.WriteFile(c+"/nd/deeper/f", []byte("deep"), 0o600))
	must(os.Chmod(c+"/o/r", 0o600))
	must(os.Lchown(c+"/o/r", 123, 456))
	must(os.Symlink("b", c+"/nl"))
	must(unix.Lsetxattr(c+"/b", "user.berth", []byte("x"), 0))
	// A lower directory removed and made again: opaque.
	must(os.RemoveAll(c + "/o"))
	must(os.Mkdir(c+"/o", 0o755))
	must(os.WriteFile(c+"/o/fresh", []byte("fresh"), 0o644))
	must(os.Link(c+"/new", c+"/newhard"))
	want := tree(t, c)
	h.unmount(c)

	var diff bytes.Buffer
	if err := h.s.Diff("c", &diff); err != nil {
		t.Fatalf("diff: %v", err)
	}
	names := tarNames(t, diff.Bytes())
	joined := "," + strings.Join(names, ",") + ","
	for _, n := range []string{"new", "b", ".wh.keep", ".wh.d", "nd/deeper/f", "nl", "o/fresh", "newhard"} {
		if !strings.Contains(joined, ","+n+",") {
			t.Errorf("diff lacks %q: %v", n, names)
		}
	}
	for _, n := range []string{"hl", "sl", "fifo", "dev/null", "suid"} {
		if strings.Contains(joined, ","+n+",") {
			t.Errorf("diff holds the unchanged %q: %v", n, names)
		}
	}
	// The diff applied on the same parent gives the same tree.
	h.prepare("re", "l2")
	h.apply("re", bytes.NewReader(diff.Bytes()))
	h.commit("re-committed", "re")
	got := tree(t, h.mount(h.view("re-view", "re-committed")))
	compareTrees(t, want, got)
}

func testRemoveInUse(t *testing.T, h *harness) {
	h.layer("l1", "", layer1(t))
	h.layer("l2", "l1", layer2(t))
	h.view("v", "l2")
	h.prepare("c", "l1")
	for _, key := range []string{"l1", "l2"} {
		if err := h.s.Remove(key); !errors.Is(err, snapshot.ErrInUse) {
			t.Errorf("remove %s with children: %v, want ErrInUse", key, err)
		}
		if _, err := h.s.Stat(key); err != nil {
			t.Errorf("%s after a refused remove: %v", key, err)
		}
	}
	for _, key := range []string{"v", "l2", "c", "l1"} {
		if err := h.s.Remove(key); err != nil {
			t.Errorf("remove %s: %v", key, err)
		}
		if _, err := h.s.Stat(key); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("stat %s after remove: %v, want ErrNotFound", key, err)
		}
	}
	if err := h.s.Remove("l1"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
}

func testStatWalkLabels(t *testing.T, h *harness) {
	before := time.Now().Add(-time.Second)
	if _, err := h.s.Prepare("base-unpack", "", map[string]string{"stage": "unpack"}); err != nil {
		t.Fatal(err)
	}
	info, err := h.s.Stat("base-unpack")
	if err != nil || info.Kind != snapshot.KindActive || info.Labels["stage"] != "unpack" || info.Parent != "" {
		t.Errorf("stat base-unpack: %+v %v", info, err)
	}
	h.apply("base-unpack", bytes.NewReader(layer1(t)))
	if err := h.s.Commit("base", "base-unpack", map[string]string{"containerd.io/uncompressed": "sha256:x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Stat("base-unpack"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("the active key after commit: %v, want ErrNotFound", err)
	}
	if _, err := h.s.Prepare("c", "base", map[string]string{"container": "web"}); err != nil {
		t.Fatal(err)
	}
	h.view("v", "base")
	want := map[string]snapshot.Info{
		"base": {Key: "base", Kind: snapshot.KindCommitted, Labels: map[string]string{"containerd.io/uncompressed": "sha256:x"}},
		"c":    {Key: "c", Parent: "base", Kind: snapshot.KindActive, Labels: map[string]string{"container": "web"}},
		"v":    {Key: "v", Parent: "base", Kind: snapshot.KindView, Labels: map[string]string{}},
	}
	seen := map[string]bool{}
	if err := h.s.Walk(func(i snapshot.Info) error {
		w, ok := want[i.Key]
		if !ok {
			t.Errorf("walk: unexpected %+v", i)
			return nil
		}
		seen[i.Key] = true
		if i.Parent != w.Parent || i.Kind != w.Kind || fmt.Sprint(i.Labels) != fmt.Sprint(w.Labels) {
			t.Errorf("walk: %+v, want %+v", i, w)
		}
		if i.Created.Before(before) || i.Created.After(time.Now().Add(time.Second)) {
			t.Errorf("walk: %s created %v, want about now", i.Key, i.Created)
		}
		if st, err := h.s.Stat(i.Key); err != nil || fmt.Sprint(st) != fmt.Sprint(i) {
			t.Errorf("stat %s = %+v (%v), walk gave %+v", i.Key, st, err, i)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(want) {
		t.Errorf("walk saw %v, want %d snapshots", seen, len(want))
	}
	stop := errors.New("stop")
	n := 0
	if err := h.s.Walk(func(snapshot.Info) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("walk stopped by its function: %v after %d calls", err, n)
	}
	// Labels returned are copies.
	info, _ = h.s.Stat("c")
	info.Labels["container"] = "changed"
	if info, _ := h.s.Stat("c"); info.Labels["container"] != "web" {
		t.Errorf("labels changed through a returned Info")
	}
}

func testErrors(t *testing.T, h *harness) {
	h.layer("base", "", layer1(t))
	h.prepare("active", "base")
	h.view("view", "base")
	check := func(what string, err, want error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s: no error", what)
		case want != nil && !errors.Is(err, want):
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err := h.s.Prepare("x", "missing", nil)
	check("prepare on a missing parent", err, snapshot.ErrNotFound)
	_, err = h.s.Prepare("x", "active", nil)
	check("prepare on an active parent", err, nil)
	_, err = h.s.View("x", "view", nil)
	check("view of a view", err, nil)
	_, err = h.s.Prepare("active", "base", nil)
	check("prepare of an existing key", err, snapshot.ErrExists)
	_, err = h.s.View("base", "", nil)
	check("view named like a committed snapshot", err, snapshot.ErrExists)
	_, err = h.s.Prepare("", "base", nil)
	check("prepare with an empty key", err, nil)
	check("commit of a missing key", h.s.Commit("y", "missing", nil), snapshot.ErrNotFound)
	check("commit of a view", h.s.Commit("y", "view", nil), nil)
	check("commit onto an existing name", h.s.Commit("base", "active", nil), snapshot.ErrExists)
	if info, err := h.s.Stat("active"); err != nil || info.Kind != snapshot.KindActive {
		t.Errorf("active after a refused commit: %+v %v", info, err)
	}
	_, err = h.s.Stat("missing")
	check("stat of a missing key", err, snapshot.ErrNotFound)
	_, err = h.s.Mounts("missing")
	check("mounts of a missing key", err, snapshot.ErrNotFound)
	_, err = h.s.Mounts("base")
	check("mounts of a committed snapshot", err, nil)
	_, _, err = h.s.ApplyDir("base")
	check("apply dir of a committed snapshot", err, nil)
	_, err = h.s.Usage("missing")
	check("usage of a missing key", err, snapshot.ErrNotFound)
	check("diff of a missing key", h.s.Diff("missing", &bytes.Buffer{}), snapshot.ErrNotFound)
	check("remove of a missing key", h.s.Remove("missing"), snapshot.ErrNotFound)
	// Nothing was left by the failures.
	n := 0
	h.s.Walk(func(snapshot.Info) error { n++; return nil })
	if n != 3 {
		t.Errorf("%d snapshots after the failed calls, want 3", n)
	}
}

func testConcurrent(t *testing.T, h *harness) {
	h.layer("base", "", layer1(t))
	// A second store on the same root stands for another berth process.
	other := h.new(t, h.root)
	stores := []snapshot.Snapshotter{h.s, other}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = stores[i%2].Prepare("same", "base", nil) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, snapshot.ErrExists):
			t.Errorf("prepare %d: %v, want nil or ErrExists", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent Prepares of one key succeeded, want exactly 1", won, n)
	}
	// Different keys all succeed, each with its own tree.
	sources := make([][]snapshot.Mount, n)
	for i := range n {
		wg.Go(func() { sources[i], errs[i] = stores[i%2].Prepare(fmt.Sprintf("c%d", i), "base", nil) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("prepare c%d: %v", i, err)
			continue
		}
		s := fmt.Sprint(sources[i])
		if seen[s] {
			t.Errorf("c%d has the mounts of another snapshot: %s", i, s)
		}
		seen[s] = true
	}
	for i := range n {
		wg.Go(func() { errs[i] = stores[i%2].Remove("same") })
	}
	wg.Wait()
	won = 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, snapshot.ErrNotFound):
			t.Errorf("remove %d: %v, want nil or ErrNotFound", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent Removes of one key succeeded, want exactly 1", won, n)
	}
	count := 0
	h.s.Walk(func(snapshot.Info) error { count++; return nil })
	if count != n+1 {
		t.Errorf("%d snapshots, want %d", count, n+1)
	}
	other.Close()
}

func testLongChain(t *testing.T, h *harness) {
	const layers = 128
	parent := ""
	for i := 1; i <= layers; i++ {
		ents := []ent{file(fmt.Sprintf("f%03d", i), fmt.Sprint(i))}
		if i%10 == 0 {
			ents = append(ents, whiteout(fmt.Sprintf("f%03d", i-1)))
		}
		name := fmt.Sprintf("layer%03d", i)
		h.layer(name, parent, tarOf(t, ents...))
		parent = name
	}
	mounts := h.prepare("c", parent)
	size := 0
	for _, m := range mounts {
		size += len(strings.Join(m.Options, ","))
	}
	t.Logf("%d layers: mount options are %d bytes (mount(2) takes %d)", layers, size, os.Getpagesize()-1)
	c := h.mount(mounts)
	names := dirNames(t, c)
	want := 0
	for i := 1; i <= layers; i++ {
		gone := (i+1)%10 == 0
		p := fmt.Sprintf("%s/f%03d", c, i)
		if gone {
			assertMissing(t, p)
			continue
		}
		want++
		if got := readFile(t, p); got != fmt.Sprint(i) {
			t.Errorf("f%03d = %q, want %d", i, got, i)
		}
	}
	if len(names) != want {
		t.Errorf("the container sees %d files, want %d", len(names), want)
	}
	if err := os.WriteFile(c+"/top", []byte("t"), 0o644); err != nil {
		t.Errorf("write on a %d-layer chain: %v", layers, err)
	}
	v := h.mount(h.view("v", parent))
	if got := readFile(t, v+"/f001"); got != "1" {
		t.Errorf("view of the chain: /f001 = %q", got)
	}
}

func testUsage(t *testing.T, h *harness) {
	h.layer("base", "", layer1(t))
	bu, err := h.s.Usage("base")
	if err != nil {
		t.Fatal(err)
	}
	// layer1 has 15 entries (one a hard link) and its root directory.
	if bu.Inodes < 15 || bu.Size <= 0 {
		t.Errorf("usage of the base layer: %+v, want at least 15 inodes", bu)
	}
	h.prepare("c", "base")
	u0, err := h.s.Usage("c")
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := h.s.ApplyDir("c")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("berth-usage-"), (1<<20)/12+1)[:1<<20]
	if err := os.Mkdir(dir+"/bigdir", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/bigdir/big", big, 0o644); err != nil {
		t.Fatal(err)
	}
	u1, err := h.s.Usage("c")
	if err != nil {
		t.Fatal(err)
	}
	if u1.Inodes-u0.Inodes != 2 {
		t.Errorf("inodes %d -> %d after adding a directory and a file, want +2", u0.Inodes, u1.Inodes)
	}
	if d := u1.Size - u0.Size; d < 1<<20 || d > 1<<20+64<<10 {
		t.Errorf("size %d -> %d after adding 1 MiB, want about +1 MiB", u0.Size, u1.Size)
	}
	if again, _ := h.s.Usage("base"); again != bu {
		t.Errorf("the parent's usage changed: %+v -> %+v", bu, again)
	}
}
