// Archive interop: the real Docker loads what berth's image/archive saves
// (docker-archive and oci-archive), and berth loads what `docker save`
// writes. Run as root (CI is root):
//
//	go test ./tests/interop/ -run TestArchive -v
//
// It reuses registry_test.go's helpers: missing Debian packages are
// installed, containerd and dockerd are private to one
// /tmp/berth-interop-archive-* directory, and what dockerd changes on the
// host by default is put back.
package interop_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image/archive"
	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/content/local"
	"github.com/berth-project/berth/internal/testutil"
)

func TestArchiveDockerLoadSave(t *testing.T) {
	work, _ := hostWork(t, "berth-interop-archive-", map[string]string{"dockerd": "docker.io", "containerd": "containerd", "runc": "runc"},
		"/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd")
	images := testutil.SharedImages(t)
	ctx := context.Background()
	cs, err := local.New(filepath.Join(work, "content"))
	if err != nil {
		t.Fatal(err)
	}
	docker := startDocker(t, filepath.Join(work, "docker"))

	// What Docker must show for an image: its ID (the config digest) and
	// its layers' diff_ids.
	type want struct {
		id      digest.Digest
		diffIDs []digest.Digest
	}
	describe := func(cs content.Store, desc ocispec.Descriptor) want {
		t.Helper()
		var m ocispec.Manifest
		var cfg ocispec.Image
		p, err := content.ReadBlob(ctx, cs, desc)
		if err == nil {
			err = json.Unmarshal(p, &m)
		}
		if err == nil {
			p, err = content.ReadBlob(ctx, cs, m.Config)
		}
		if err == nil {
			err = json.Unmarshal(p, &cfg)
		}
		if err != nil {
			t.Fatalf("image %s: %v", desc.Digest, err)
		}
		return want{m.Config.Digest, cfg.RootFS.DiffIDs}
	}
	inspect := func(name string) want {
		t.Helper()
		out := run(t, 30, docker("image", "inspect", "-f", "{{.Id}} {{json .RootFS.Layers}}", name))
		id, layers, _ := strings.Cut(strings.TrimSpace(out), " ")
		var w want
		w.id = digest.Digest(id)
		if err := json.Unmarshal([]byte(layers), &w.diffIDs); err != nil {
			t.Fatalf("docker image inspect %s: %q: %v", name, out, err)
		}
		return w
	}

	var layersWant want
	t.Run("docker load of berth save", func(t *testing.T) {
		for _, f := range []archive.Format{archive.FormatDocker, archive.FormatOCI} {
			var items []archive.SaveItem
			var wants []want
			for _, img := range []string{"busybox:1.35", "layers:1"} {
				l, err := archive.ReadLayout(ctx, filepath.Join(images, "oci"), img, cs)
				if err != nil {
					t.Fatal(err)
				}
				repo, tag, _ := strings.Cut(img, ":")
				name := "berth-interop/" + repo + ":" + tag + "-" + f.String()
				items = append(items, archive.SaveItem{Names: []string{name}, Manifest: l.Manifest})
				wants = append(wants, describe(cs, l.Manifest))
			}
			layersWant = wants[1]
			file := filepath.Join(work, f.String()+".tar")
			out, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := archive.Save(ctx, out, cs, items, f); err != nil {
				t.Fatalf("save %s: %v", f, err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
			loaded := run(t, 120, docker("load", "-i", file))
			for i, it := range items {
				name := it.Names[0]
				if !strings.Contains(loaded, "Loaded image: "+name) {
					t.Errorf("docker load of the %s: %q does not say it loaded %s", f, loaded, name)
				}
				if got := inspect(name); got.id != wants[i].id || !slices.Equal(got.diffIDs, wants[i].diffIDs) {
					t.Errorf("docker's %s: %+v, want %+v", name, got, wants[i])
				}
			}
			// The layers really are applied in order: a file only the
			// last layers make, read out of a created container.
			name := items[1].Names[0]
			id := strings.TrimSpace(run(t, 60, docker("create", "--network", "none", name)))
			if got := run(t, 60, docker("cp", id+":/data/keep/a", "-")); !strings.Contains(got, "changed") {
				t.Errorf("docker cp /data/keep/a out of %s: %q", name, got)
			}
			run(t, 60, docker("rm", id))
		}
	})

	t.Run("berth load of docker save", func(t *testing.T) {
		run(t, 120, docker("load", "-i", filepath.Join(images, "busybox.docker.tar.gz")))
		busyboxWant := inspect("busybox:1.35")
		names := []string{"busybox:1.35"}
		wants := []want{busyboxWant}
		if layersWant.id != "" {
			names = append(names, "berth-interop/layers:1-docker-archive")
			wants = append(wants, layersWant)
		}
		file := filepath.Join(work, "docker-save.tar")
		run(t, 120, docker(append([]string{"save", "-o", file}, names...)...))
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cs2, err := local.New(filepath.Join(work, "content2"))
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := archive.Load(ctx, f, cs2, nil)
		if err != nil {
			t.Fatalf("load of docker save output: %v", err)
		}
		if len(loaded) != len(names) {
			t.Fatalf("loaded %+v, want %d images", loaded, len(names))
		}
		for i, name := range names {
			full := "docker.io/library/" + name
			if strings.Contains(name, "/") {
				full = "docker.io/" + name
			}
			var got *archive.Loaded
			for j := range loaded {
				if slices.Contains(loaded[j].Names, full) {
					got = &loaded[j]
				}
			}
			if got == nil {
				t.Errorf("%s not among the loaded images %+v", full, loaded)
				continue
			}
			if w := describe(cs2, got.Manifest); w.id != wants[i].id || !slices.Equal(w.diffIDs, wants[i].diffIDs) {
				t.Errorf("%s loaded from docker save: %+v, want %+v", name, w, wants[i])
			}
		}
	})
}
