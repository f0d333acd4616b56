package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/internal/testutil"
)

func sameDescs(t *testing.T, what string, got, want []ocispec.Descriptor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d descriptors, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].Digest != want[i].Digest || got[i].Size != want[i].Size {
			t.Fatalf("%s %d: got %s (%d), want %s (%d)", what, i, got[i].Digest, got[i].Size, want[i].Digest, want[i].Size)
		}
	}
}

// TestPushPullRoundTrip pushes the shared images to a real registry and
// pulls them back into another store.
func TestPushPullRoundTrip(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	ctx := context.Background()
	src := newStore(t)
	srcDB := SourceDB(tempDir(t) + "/sources.db")
	for _, tc := range []struct{ image, ref string }{
		{"busybox:1.35", "berth/busybox:1.35"},
		{"layers:1", "berth/layers:1"},
	} {
		img := loadImage(t, src, tc.image)
		ref := mustRef(t, reg+"/"+tc.ref)
		prog := &recorder{}
		if err := Push(ctx, ref, src, img.manifest, PushOptions{Progress: prog, SourceDB: srcDB}); err != nil {
			t.Fatalf("push %s: %v", tc.ref, err)
		}
		// layers:1 starts with busybox's layer, which the source DB says
		// berth/busybox has: mounted, not uploaded.
		first := shortID(img.layers[0].Digest)
		if tc.image == "busybox:1.35" && !prog.has(first, "Pushed") ||
			tc.image == "layers:1" && !prog.has(first, "Mounted from berth/busybox") {
			t.Errorf("push progress of %s: %s", tc.image, prog)
		}

		dst := newStore(t)
		hook := &hashingHook{}
		res, err := Pull(ctx, ref, dst, PullOptions{LayerHook: hook.hook})
		if err != nil {
			t.Fatalf("pull %s: %v", tc.ref, err)
		}
		if res.Digest != img.manifest.Digest || res.Manifest.Digest != img.manifest.Digest || res.Index != nil {
			t.Fatalf("pulled digest %s, manifest %s, index %v; pushed %s", res.Digest, res.Manifest.Digest, res.Index, img.manifest.Digest)
		}
		if res.Manifest.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("manifest media type %q", res.Manifest.MediaType)
		}
		if res.Config.Digest != img.config.Digest {
			t.Fatalf("config %s, want %s", res.Config.Digest, img.config.Digest)
		}
		sameDescs(t, "layer", res.Layers, img.layers)
		for _, d := range append([]ocispec.Descriptor{res.Manifest, res.Config}, res.Layers...) {
			if !hasBlob(t, dst, d.Digest) {
				t.Fatalf("blob %s not in the store after pull", d.Digest)
			}
		}
		for _, l := range img.layers {
			if hook.got[l.Digest] != l.Digest {
				t.Fatalf("layer hook saw bytes with digest %s for layer %s", hook.got[l.Digest], l.Digest)
			}
		}

		// A second pull into the same store fetches no layer again, and
		// the hook gets the stored blobs.
		prog = &recorder{}
		hook = &hashingHook{}
		if _, err := Pull(ctx, ref, dst, PullOptions{Progress: prog, LayerHook: hook.hook}); err != nil {
			t.Fatalf("second pull: %v", err)
		}
		for _, l := range img.layers {
			if !prog.has(shortID(l.Digest), "Already exists") || prog.has(shortID(l.Digest), "Downloading") {
				t.Fatalf("second pull progress for %s: %s", l.Digest, prog)
			}
			if hook.got[l.Digest] != l.Digest {
				t.Fatalf("second pull: hook saw %s for layer %s", hook.got[l.Digest], l.Digest)
			}
		}
		// A pushed-again image has every blob already.
		prog = &recorder{}
		if err := Push(ctx, ref, src, img.manifest, PushOptions{Progress: prog}); err != nil {
			t.Fatal(err)
		}
		if !prog.has(shortID(img.layers[0].Digest), "Layer already exists") {
			t.Errorf("second push progress: %s", prog)
		}
	}

	// Cross-repository mount: layers:1 shares busybox's layer; pushing it
	// to a new repo mounts what the source DB says berth/layers has.
	img := loadImage(t, src, "layers:1")
	prog := &recorder{}
	other := mustRef(t, reg+"/berth/other:1")
	if err := Push(ctx, other, src, img.manifest, PushOptions{Progress: prog, SourceDB: srcDB}); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.layers {
		if !prog.has(shortID(l.Digest), "Mounted from berth/layers") && !prog.has(shortID(l.Digest), "Mounted from berth/busybox") {
			t.Fatalf("layer %s was not mounted: %s", l.Digest, prog)
		}
	}
	if srcs, err := srcDB.Lookup(img.layers[1].Digest); err != nil || len(srcs) == 0 || srcs[0] != reg+"/berth/other" {
		t.Fatalf("source db for %s: %v %v", img.layers[1].Digest, srcs, err)
	}
	dst := newStore(t)
	res, err := Pull(ctx, other, dst, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameDescs(t, "mounted layer", res.Layers, img.layers)

	// Chunked upload to a fresh repository.
	chunked := mustRef(t, reg+"/berth/chunked:1")
	if err := Push(ctx, chunked, src, img.manifest, PushOptions{ChunkSize: 64 << 10, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	res, err = Pull(ctx, chunked, newStore(t), PullOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	sameDescs(t, "chunked layer", res.Layers, img.layers)

	// Unknown tags and repositories are ErrNotFound.
	_, err = Pull(ctx, mustRef(t, reg+"/berth/busybox:nope"), newStore(t), PullOptions{})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("pull of a missing tag: %v", err)
	}
}

// TestPullSkopeoPushed pulls what skopeo copied from the OCI layout, in
// OCI and Docker schema 2 formats.
func TestPullSkopeoPushed(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	skopeo := testutil.NeedBinary(t, "skopeo", "skopeo")
	layout := ociLayout(t)
	ctx := context.Background()
	want := loadImage(t, newStore(t), "busybox:1.35")
	for _, tc := range []struct {
		repo, format, mediaType string
	}{
		{"berth/skopeo-oci:1", "oci", ocispec.MediaTypeImageManifest},
		{"berth/skopeo-v2s2:1", "v2s2", MediaTypeDockerManifest},
	} {
		out, err := exec.Command(skopeo, "copy", "--format", tc.format, "--dest-tls-verify=false",
			"oci:"+layout+":busybox:1.35", "docker://"+reg+"/"+tc.repo).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
		cs := newStore(t)
		res, err := Pull(ctx, mustRef(t, reg+"/"+tc.repo), cs, PullOptions{})
		if err != nil {
			t.Fatalf("pull %s: %v", tc.repo, err)
		}
		if res.Manifest.MediaType != tc.mediaType {
			t.Fatalf("%s: manifest media type %q, want %q", tc.repo, res.Manifest.MediaType, tc.mediaType)
		}
		if res.Config.Digest != want.config.Digest {
			t.Fatalf("%s: config %s, want %s", tc.repo, res.Config.Digest, want.config.Digest)
		}
		sameDescs(t, tc.repo+" layer", res.Layers, want.layers)
		// The pulled manifest is what skopeo inspect reports.
		out, err = exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+reg+"/"+tc.repo).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.FromBytes(out); got != res.Digest {
			t.Fatalf("%s: pulled digest %s, skopeo sees %s", tc.repo, res.Digest, got)
		}
		stored, err := content.ReadBlob(ctx, cs, res.Manifest)
		if err != nil || !bytes.Equal(stored, out) {
			t.Fatalf("%s: stored manifest differs from the registry's (%v)", tc.repo, err)
		}
	}
}

// TestMultiArchIndex pushes an index of two images for two platforms and
// pulls each platform, and a missing one.
func TestMultiArchIndex(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	ctx := context.Background()
	src := newStore(t)
	amd := loadImage(t, src, "busybox:1.35")
	arm := loadImage(t, src, "layers:1")
	amdDesc, armDesc := amd.manifest, arm.manifest
	amdDesc.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	armDesc.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	att := amd.manifest // an attestation-like entry must be ignored
	att.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{amdDesc, armDesc, att}}
	idx.SchemaVersion = 2
	body, _ := json.Marshal(idx)
	idesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(body), Size: int64(len(body))}
	if err := content.WriteBlob(ctx, src, idesc, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, reg+"/berth/multi:1")
	if err := Push(ctx, ref, src, idesc, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		platform string
		want     image
	}{
		{"linux/amd64", amd},
		{"linux/arm64", arm},
		{"linux/arm64/v8", arm},
		{"linux/aarch64", arm},
	} {
		p, err := ParsePlatform(tc.platform)
		if err != nil {
			t.Fatal(err)
		}
		cs := newStore(t)
		res, err := Pull(ctx, ref, cs, PullOptions{Platform: p})
		if err != nil {
			t.Fatalf("pull %s: %v", tc.platform, err)
		}
		if res.Index == nil || res.Index.Digest != idesc.Digest || res.Digest != idesc.Digest {
			t.Fatalf("%s: index %v digest %s, want %s", tc.platform, res.Index, res.Digest, idesc.Digest)
		}
		if res.Manifest.Digest != tc.want.manifest.Digest || res.Manifest.Platform == nil {
			t.Fatalf("%s: got manifest %s, want %s", tc.platform, res.Manifest.Digest, tc.want.manifest.Digest)
		}
		sameDescs(t, tc.platform, res.Layers, tc.want.layers)
		if !hasBlob(t, cs, idesc.Digest) || !hasBlob(t, cs, res.Manifest.Digest) {
			t.Fatalf("%s: index or manifest not stored", tc.platform)
		}
		// By digest too.
		if _, err := Pull(ctx, mustRef(t, reg+"/berth/multi@"+idesc.Digest.String()), cs, PullOptions{Platform: p}); err != nil {
			t.Fatalf("pull by digest: %v", err)
		}
	}
	_, err := Pull(ctx, ref, newStore(t), PullOptions{Platform: ocispec.Platform{OS: "linux", Architecture: "s390x"}})
	if err == nil || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "available: linux/amd64, linux/arm64/v8") {
		t.Fatalf("pull of a missing platform: %v", err)
	}
	// A digest that is not the manifest's is refused.
	bad := mustRef(t, reg+"/berth/multi@"+digest.FromString("x").String())
	if _, err := Pull(ctx, bad, newStore(t), PullOptions{}); err == nil {
		t.Fatal("pull of an unknown digest succeeded")
	}
}
