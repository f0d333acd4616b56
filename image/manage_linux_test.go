package image

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/berth-project/berth/image/content"
	digest "github.com/opencontainers/go-digest"
)

func items(its []RemovedItem) []string {
	var out []string
	for _, it := range its {
		if it.Untagged != "" {
			out = append(out, "Untagged: "+it.Untagged)
		} else {
			out = append(out, "Deleted: "+it.Deleted)
		}
	}
	return out
}

func TestTagAndRemove(t *testing.T) {
	var mu sync.Mutex
	used := map[string]bool{}
	s := newService(t, "overlay", Options{InUse: func(id string) bool { mu.Lock(); defer mu.Unlock(); return used[id] }})
	imgs := registerShared(t, s, "busybox:1.35", "layers:1")
	bb := imgs["busybox:1.35"]
	if _, err := s.Unpack(ctx, bb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag(ctx, "busybox:1.35", "mybox"); err != nil {
		t.Fatal(err)
	}
	img, err := s.Tag(ctx, bb.ShortID(), "localhost:5000/x:1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"busybox:1.35", "localhost:5000/x:1", "mybox:latest"}; !reflect.DeepEqual(img.RepoTags, want) {
		t.Errorf("RepoTags %v, want %v", img.RepoTags, want)
	}
	if _, err := s.Tag(ctx, "busybox:1.35", "x@sha256:"+strings.Repeat("a", 64)); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("tag with a digest: %v", err)
	}
	if _, err := s.Tag(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag of a missing image: %v", err)
	}
	// Moving a tag: mybox now names layers:1.
	if _, err := s.Tag(ctx, "layers:1", "mybox"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "mybox"); got.ID != imgs["layers:1"].ID {
		t.Errorf("mybox is %s after retag", got.ID)
	}
	if got, _ := s.Get(ctx, bb.ID); len(got.RepoTags) != 2 {
		t.Errorf("busybox tags after the move: %v", got.RepoTags)
	}

	// By ID, several repositories: refused unless forced.
	if _, err := s.Remove(ctx, bb.ShortID(), false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "multiple repositories") {
		t.Fatalf("remove by ID with two repositories: %v", err)
	}
	// By name: untag only.
	res, err := s.Remove(ctx, "localhost:5000/x:1", false)
	if err != nil || !reflect.DeepEqual(items(res), []string{"Untagged: localhost:5000/x:1"}) {
		t.Fatalf("remove by name: %v %v", items(res), err)
	}
	// The last tag of an image a container uses: refused, forced untags.
	mu.Lock()
	used[bb.ID] = true
	mu.Unlock()
	if _, err := s.Remove(ctx, "busybox:1.35", false); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "container") {
		t.Fatalf("remove of a used image: %v", err)
	}
	res, err = s.Remove(ctx, "busybox:1.35", true)
	if err != nil || !reflect.DeepEqual(items(res), []string{"Untagged: busybox:1.35"}) {
		t.Fatalf("forced remove of a used image: %v %v", items(res), err)
	}
	if got, err := s.Get(ctx, bb.ID); err != nil || len(got.RepoTags) != 0 {
		t.Fatalf("used image after forced remove: %v %v", got, err)
	}
	dangling := true
	if l, _ := s.List(ctx, ListOptions{Dangling: &dangling}); len(l) != 1 || l[0].ID != bb.ID {
		t.Errorf("dangling list %v", l)
	}
	mu.Lock()
	used[bb.ID] = false
	mu.Unlock()
	// By ID: deleted; its own blobs go, the layer shared with layers:1 stays.
	res, err = s.Remove(ctx, bb.ID, false)
	if err != nil || !reflect.DeepEqual(items(res), []string{"Deleted: " + bb.ID}) {
		t.Fatalf("remove by ID: %v %v", items(res), err)
	}
	if _, err := s.Get(ctx, bb.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed image still there: %v", err)
	}
	if _, err := s.Content().Info(ctx, bb.ConfigDescriptor.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Errorf("config blob of the removed image: %v", err)
	}
	if _, err := s.Content().Info(ctx, bb.Layers[0].Digest); err != nil {
		t.Errorf("shared layer blob: %v", err)
	}
	if _, err := s.Remove(ctx, "busybox:1.35", false); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such image: busybox:1.35") {
		t.Errorf("remove of a missing image: %v", err)
	}

	// The last tag by name deletes, and the layers no image uses go too.
	l := imgs["layers:1"]
	if _, err := s.Unpack(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, "mybox", false); err != nil {
		t.Fatal(err)
	}
	res, err = s.Remove(ctx, "layers:1", false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Untagged: layers:1", "Deleted: " + l.ID}
	if got := items(res); len(got) != 6 || !reflect.DeepEqual(got[:2], want) {
		t.Errorf("remove of the last tag: %v, want %v and 4 layers", got, want)
	}
	if got := committedLayers(t, s); len(got) != 0 {
		t.Errorf("layers left: %v", got)
	}
	n := 0
	s.Content().Walk(ctx, func(content.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d blobs left", n)
	}
}

func TestPruneListDiskUsage(t *testing.T) {
	s := newService(t, "overlay", Options{})
	imgs := registerShared(t, s, "busybox:1.35", "layers:1")
	for _, img := range imgs {
		if _, err := s.Unpack(ctx, img); err != nil {
			t.Fatal(err)
		}
	}
	du, err := s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(du.Images) != 2 || du.LayersSize <= 0 || du.BlobsSize <= 0 {
		t.Fatalf("disk usage %+v", du)
	}
	for _, u := range du.Images {
		if u.SharedSize <= 0 || u.Size != u.SharedSize+u.UniqueSize {
			t.Errorf("usage of %v: %+v (the busybox layer is shared)", u.RepoTags, u)
		}
	}
	// Filters.
	names := func(l []*Image) []string {
		var out []string
		for _, i := range l {
			out = append(out, strings.Join(i.RepoTags, ","))
		}
		return out
	}
	for _, c := range []struct {
		opts ListOptions
		want []string
	}{
		{ListOptions{Reference: []string{"busy*"}}, []string{"busybox:1.35"}},
		{ListOptions{Reference: []string{"layers:1"}}, []string{"layers:1"}},
		{ListOptions{Reference: []string{"*:1*"}}, []string{"layers:1", "busybox:1.35"}},
		{ListOptions{Since: "busybox:1.35"}, []string{"layers:1"}},
		{ListOptions{Before: "layers:1"}, []string{"busybox:1.35"}},
		{ListOptions{Label: []string{"nope"}}, nil},
	} {
		l, err := s.List(ctx, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(l); !reflect.DeepEqual(got, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.opts, got, c.want)
		}
	}
	if _, err := s.List(ctx, ListOptions{Reference: []string{"[bad"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad glob: %v", err)
	}

	// Dangling prune leaves tagged images alone.
	rep, err := s.Prune(ctx, false)
	if err != nil || len(rep.Items) != 0 {
		t.Fatalf("prune with nothing dangling: %+v %v", rep, err)
	}
	if _, err := s.Remove(ctx, "layers:1", true); err != nil {
		t.Fatal(err)
	}
	// Re-register layers:1 untagged (dangling), then prune it.
	m := layoutManifests(t, sharedLayout(t))
	copyBlobs(t, s, sharedLayout(t))
	if _, err := s.Register(ctx, m["layers:1"], nil); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Prune(ctx, false)
	if err != nil || !reflect.DeepEqual(items(rep.Items), []string{"Deleted: " + imgs["layers:1"].ID}) {
		t.Fatalf("dangling prune: %v %v", items(rep.Items), err)
	}
	rep, err = s.Prune(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := items(rep.Items); len(got) < 2 || got[0] != "Untagged: busybox:1.35" || got[1] != "Deleted: "+imgs["busybox:1.35"].ID {
		t.Errorf("prune all: %v", got)
	}
	if rep.SpaceReclaimed < 1<<20 {
		t.Errorf("reclaimed %d bytes", rep.SpaceReclaimed)
	}
	if l, _ := s.List(ctx, ListOptions{All: true}); len(l) != 0 {
		t.Errorf("images after prune -a: %v", names(l))
	}
	if got := committedLayers(t, s); len(got) != 0 {
		t.Errorf("layers after prune -a: %v", got)
	}
}

func TestHistory(t *testing.T) {
	s := newService(t, "overlay", Options{})
	imgs := registerShared(t, s, "layers:1")
	l := imgs["layers:1"]
	if _, err := s.Unpack(ctx, l); err != nil {
		t.Fatal(err)
	}
	h, err := s.History(ctx, "layers:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != len(l.Config.History) {
		t.Fatalf("%d entries, want %d", len(h), len(l.Config.History))
	}
	if h[0].ID != l.ID || !reflect.DeepEqual(h[0].Tags, []string{"layers:1"}) {
		t.Errorf("top entry %+v", h[0])
	}
	for _, e := range h[1:] {
		if e.ID != "<missing>" {
			t.Errorf("entry %+v: want <missing>", e)
		}
	}
	last := h[len(h)-1]
	if last.Comment != "Imported from -" || last.Size < 1<<20 {
		t.Errorf("oldest entry %+v: want the busybox import, over 1 MB", last)
	}
	found := false
	for _, e := range h {
		if strings.Contains(e.CreatedBy, "rm /data/gone") {
			found = true
			if e.Size <= 0 {
				t.Errorf("layer 3 entry has size %d", e.Size)
			}
		}
		if strings.Contains(e.CreatedBy, "#(nop)") && e.Size != 0 {
			t.Errorf("empty-layer entry %+v has a size", e)
		}
	}
	if !found {
		t.Errorf("no entry for layer 3 in %+v", h)
	}
	for i := 1; i < len(h); i++ {
		if h[i].Created.After(h[i-1].Created) {
			t.Errorf("entries not newest first")
		}
	}
	if _, err := s.History(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("history of a missing image: %v", err)
	}
}

func TestCommitOnSnapshotDiff(t *testing.T) {
	s := newService(t, "overlay", Options{})
	imgs := registerShared(t, s, "busybox:1.35")
	bb := imgs["busybox:1.35"]
	top, err := s.Unpack(ctx, bb)
	if err != nil {
		t.Fatal(err)
	}
	// A container's root filesystem: write a file, delete one.
	sn := s.Snapshotter()
	key := "berth-test-container-" + bb.ShortID()
	if _, err := sn.Prepare(key, top, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Remove(key) })
	dir, _, err := sn.ApplyDir(key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "srv"), 0o755)
	os.WriteFile(filepath.Join(dir, "srv", "msg"), []byte("committed\n"), 0o644)
	var diff bytes.Buffer
	if err := sn.Diff(key, &diff); err != nil {
		t.Fatal(err)
	}
	changes, err := ParseChanges([]string{`CMD ["cat", "/srv/msg"]`, "ENV A=1", "LABEL team=core", "EXPOSE 8080/udp"})
	if err != nil {
		t.Fatal(err)
	}
	changes.Author, changes.Comment, changes.CreatedBy = "tester", "a commit", "sh"
	img, err := s.Commit(ctx, &diff, bb, changes, "committed:v1")
	if err != nil {
		t.Fatal(err)
	}
	if img.Parent != bb.ID || len(img.Layers) != 2 || img.Layers[0].Digest != bb.Layers[0].Digest || !reflect.DeepEqual(img.RepoTags, []string{"committed:v1"}) {
		t.Errorf("committed image %+v", img)
	}
	c := img.Config.Config
	if !reflect.DeepEqual(c.Cmd, []string{"cat", "/srv/msg"}) || !contains(c.Env, "A=1") || c.Labels["team"] != "core" || img.Config.Author != "tester" {
		t.Errorf("config %+v", c)
	}
	if _, ok := c.ExposedPorts["8080/udp"]; !ok {
		t.Errorf("ports %v", c.ExposedPorts)
	}
	root := mountImage(t, s, img)
	if got := readFile(t, filepath.Join(root, "srv/msg")); got != "committed\n" {
		t.Errorf("/srv/msg = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "bin/busybox")); err != nil {
		t.Error(err)
	}
	h, err := s.History(ctx, "committed:v1")
	if err != nil || len(h) != 2 || h[0].Comment != "a commit" || h[0].CreatedBy != "sh" || h[1].ID != bb.ID || !reflect.DeepEqual(h[1].Tags, []string{"busybox:1.35"}) {
		t.Errorf("history %+v %v", h, err)
	}
	if _, err := s.Remove(ctx, bb.ID, true); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "child") {
		t.Errorf("remove of a parent: %v", err)
	}
	// Untagging the parent keeps it as an intermediate image.
	if _, err := s.Remove(ctx, "busybox:1.35", false); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(ctx, ListOptions{}); len(l) != 1 {
		t.Errorf("list without -a shows %d images, want the child only", len(l))
	}
	if l, _ := s.List(ctx, ListOptions{All: true}); len(l) != 2 {
		t.Errorf("list -a shows %d images", len(l))
	}
	// Removing the child deletes the untagged parent too.
	res, err := s.Remove(ctx, "committed:v1", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := items(res); len(got) < 3 || got[1] != "Deleted: "+img.ID || got[2] != "Deleted: "+bb.ID {
		t.Errorf("remove of the child: %v", got)
	}
	// The container's snapshot still sits on the busybox layer: kept.
	if _, err := sn.Stat(top); err != nil {
		t.Errorf("layer under a container was collected: %v", err)
	}
}

func TestImport(t *testing.T) {
	s := newService(t, "vfs", Options{})
	rootfs := tarOf(t, map[string]string{"./": "", "./etc/": "", "./etc/hostname": "imported\n", "./hello": "#!/bin/sh\n"})
	img, err := s.Import(ctx, bytes.NewReader(gz(rootfs)), "imported", []string{
		`ENTRYPOINT ["/hello"]`, "WORKDIR /work", "WORKDIR sub", "USER 1000:1000", "VOLUME /data /cache", `ENV "GREETING=hi there" B=2`,
	}, "Imported from -")
	if err != nil {
		t.Fatal(err)
	}
	c := img.Config.Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/hello"}) || c.WorkingDir != "/work/sub" || c.User != "1000:1000" || !contains(c.Env, "GREETING=hi there") || !contains(c.Env, "B=2") || len(c.Volumes) != 2 {
		t.Errorf("config %+v", c)
	}
	if img.DiffIDs[0] != digest.FromBytes(rootfs) || img.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
		t.Errorf("layer %v %v", img.DiffIDs, img.Layers)
	}
	if img.Config.History[0].Comment != "Imported from -" || !reflect.DeepEqual(img.RepoTags, []string{"imported:latest"}) {
		t.Errorf("history %+v tags %v", img.Config.History, img.RepoTags)
	}
	root := mountImage(t, s, img)
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "imported\n" {
		t.Errorf("/etc/hostname = %q", got)
	}
	// Not a tar: clear error, no image.
	if _, err := s.Import(ctx, strings.NewReader("definitely not a tar file, just some words here"), "bad", nil, ""); err == nil || !strings.Contains(err.Error(), "tar") {
		t.Errorf("import of a non-tar: %v", err)
	}
	if _, err := s.Import(ctx, bytes.NewReader(rootfs), "bad2", []string{"RUN x"}, ""); err == nil || !strings.Contains(err.Error(), "unknown instruction RUN") {
		t.Errorf("bad change: %v", err)
	}
	if l, _ := s.List(ctx, ListOptions{All: true}); len(l) != 1 {
		t.Errorf("%d images", len(l))
	}
}
