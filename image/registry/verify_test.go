package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-project/berth/image/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRegistry serves fixed manifests and blobs, true or not.
type fakeRegistry struct {
	manifests map[string][]byte        // tag -> body
	blobs     map[digest.Digest][]byte // what it sends for a digest
	chunked   bool                     // send blobs without Content-Length
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
	case strings.HasPrefix(r.URL.Path, "/v2/x/manifests/"):
		b, ok := f.manifests[strings.TrimPrefix(r.URL.Path, "/v2/x/manifests/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/v2/x/blobs/"):
		b, ok := f.blobs[digest.Digest(strings.TrimPrefix(r.URL.Path, "/v2/x/blobs/"))]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if f.chunked {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		}
		w.Write(b)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// TestLyingManifest: a manifest or registry that lies about a blob's size
// or content fails the pull with an error naming the blob, and nothing of
// the image is committed.
func TestLyingManifest(t *testing.T) {
	ctx := context.Background()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := bytes.Repeat([]byte("berth layer bytes "), 50000)
	cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	ldesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	tampered := bytes.Clone(layer)
	tampered[len(tampered)/2] ^= 1

	for _, tc := range []struct {
		name      string
		layerSize int64
		sent      []byte
		config    []byte
		chunked   bool
		want      string
		blob      digest.Digest
	}{
		{name: "size smaller than the blob", layerSize: ldesc.Size - 10, sent: layer, want: "registry sends", blob: ldesc.Digest},
		{name: "size larger than the blob", layerSize: ldesc.Size + 10, sent: layer, want: "registry sends", blob: ldesc.Digest},
		{name: "smaller, no content length", layerSize: ldesc.Size - 10, sent: layer, chunked: true, want: "more than", blob: ldesc.Digest},
		{name: "larger, no content length", layerSize: ldesc.Size + 10, sent: layer, chunked: true, want: "registry sent only", blob: ldesc.Digest},
		{name: "wrong content", layerSize: ldesc.Size, sent: tampered, want: "digest mismatch", blob: ldesc.Digest},
		{name: "wrong config", layerSize: ldesc.Size, sent: layer, config: []byte(strings.Replace(string(config), "amd64", "arm64", 1)), want: "digest mismatch", blob: cdesc.Digest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := ldesc
			l.Size = tc.layerSize
			m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: []ocispec.Descriptor{l}}
			m.SchemaVersion = 2
			mb, _ := json.Marshal(m)
			cfg := config
			if tc.config != nil {
				cfg = tc.config
			}
			f := &fakeRegistry{
				manifests: map[string][]byte{"t": mb},
				blobs:     map[digest.Digest][]byte{cdesc.Digest: cfg, ldesc.Digest: tc.sent},
				chunked:   tc.chunked,
			}
			srv := httptest.NewServer(f)
			defer srv.Close()
			cs := newStore(t)
			hook := &hashingHook{}
			_, err := Pull(ctx, mustRef(t, strings.TrimPrefix(srv.URL, "http://")+"/x:t"), cs, PullOptions{LayerHook: hook.hook})
			if err == nil {
				t.Fatal("pull of a lying manifest succeeded")
			}
			if !strings.Contains(err.Error(), tc.blob.String()) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name blob %s and %q", err, tc.blob, tc.want)
			}
			n := 0
			cs.Walk(ctx, func(i content.Info) error { n++; t.Logf("committed: %s", i.Digest); return nil })
			if n != 0 {
				t.Fatalf("%d blobs committed by a failed pull", n)
			}
			if d, ok := hook.got[ldesc.Digest]; ok && d == ldesc.Digest {
				t.Fatal("hook finished a tampered layer without an error")
			}
		})
	}
}

// TestPullRefusesBadManifests: schema 1, unknown media types, bad
// descriptors.
func TestPullRefusesBadManifests(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"schema1", `{"schemaVersion":1,"name":"x","tag":"t","fsLayers":[]}`, "schema 1"},
		{"not json", `<html>`, "decode manifest"},
		{"bad digest", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:zz","size":1},"layers":[]}`, "config"},
		{"no config", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`, "manifest has no config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeRegistry{manifests: map[string][]byte{"t": []byte(tc.body)}})
			defer srv.Close()
			_, err := Pull(context.Background(), mustRef(t, strings.TrimPrefix(srv.URL, "http://")+"/x:t"), newStore(t), PullOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestLayerHookError: the hook's error fails the pull, naming the layer.
func TestLayerHookError(t *testing.T) {
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := bytes.Repeat([]byte("x"), 3<<20)
	cdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	ldesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: []ocispec.Descriptor{ldesc}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	srv := httptest.NewServer(&fakeRegistry{manifests: map[string][]byte{"t": mb}, blobs: map[digest.Digest][]byte{cdesc.Digest: config, ldesc.Digest: layer}})
	defer srv.Close()
	ref := mustRef(t, strings.TrimPrefix(srv.URL, "http://")+"/x:t")
	cs := newStore(t)
	_, err := Pull(context.Background(), ref, cs, PullOptions{LayerHook: func(d ocispec.Descriptor, r io.Reader) error {
		io.CopyN(io.Discard, r, 1000)
		return errors.New("unpack failed: disk full")
	}})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), ldesc.Digest.String()) {
		t.Fatalf("pull with a failing hook: %v", err)
	}
	if hasBlob(t, cs, digest.FromBytes(mb)) {
		t.Fatal("manifest committed by a failed pull")
	}
	// The next pull resumes the layer and hands the hook the stored blob.
	hook := &hashingHook{}
	if _, err := Pull(context.Background(), ref, cs, PullOptions{LayerHook: hook.hook}); err != nil {
		t.Fatal(err)
	}
	if hook.got[ldesc.Digest] != ldesc.Digest {
		t.Fatalf("hook after resume saw %s", hook.got[ldesc.Digest])
	}
}
