package registry

import (
	"context"
	"errors"
	"fmt"
	"github.com/berth-project/berth/image/content/local"
	"github.com/berth-project/berth/internal/testutil"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// blobRequest is one blob GET the cutting proxy saw.
type blobRequest struct {
	digest digest.Digest
	rng    string
	status int
	sent   int64
}

// cutProxy forwards to a registry, and can cut the transfer of one blob
// after some bytes (cancelling the pull, as a kill would) or hide Range
// headers from the registry.
type cutProxy struct {
	backend *url.URL
	srv     *httptest.Server

	mu          sync.Mutex
	target      digest.Digest
	cutAfter    int64
	ready       func() bool // polled before cutting (nil: cut at once)
	cancel      func()
	ignoreRange bool
	oneShot     bool // cut once, then pass
	log         []blobRequest
}

func startCutProxy(t *testing.T, backend string) *cutProxy {
	t.Helper()
	u, _ := url.Parse("http://" + backend)
	p := &cutProxy{backend: u}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.Index(r.URL.Path, "/blobs/sha256:")
		if r.Method != http.MethodGet || i < 0 {
			rp.ServeHTTP(w, r)
			return
		}
		p.blob(w, r, digest.Digest(r.URL.Path[i+len("/blobs/"):]))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *cutProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *cutProxy) blob(w http.ResponseWriter, r *http.Request, d digest.Digest) {
	p.mu.Lock()
	cut := d == p.target && p.cutAfter > 0
	cutAfter, ready, ignoreRange, cancel := p.cutAfter, p.ready, p.ignoreRange, p.cancel
	p.mu.Unlock()
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, p.backend.String()+r.URL.Path, nil)
	rng := r.Header.Get("Range")
	if rng != "" && !ignoreRange {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	rec := blobRequest{digest: d, rng: rng, status: resp.StatusCode}
	defer func() {
		p.mu.Lock()
		p.log = append(p.log, rec)
		p.mu.Unlock()
	}()
	if !cut {
		rec.sent, _ = io.Copy(w, resp.Body)
		return
	}
	rec.sent, _ = io.CopyN(w, resp.Body, cutAfter)
	p.mu.Lock()
	if p.oneShot {
		p.cutAfter = 0
	}
	p.mu.Unlock()
	w.(http.Flusher).Flush()
	// Let the other layers finish, then "kill" the pull mid-layer.
	for deadline := time.Now().Add(20 * time.Second); ready != nil && !ready() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	panic(http.ErrAbortHandler)
}

func (p *cutProxy) requests() []blobRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]blobRequest(nil), p.log...)
}

func (p *cutProxy) set(fn func(p *cutProxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p)
	p.log = nil
}

// TestResumePull interrupts a pull in the middle of a layer and checks the
// next pull asks only for the rest of it, and nothing else it has.
func TestResumePull(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	ctx := context.Background()
	src := newStore(t)
	img := loadImage(t, src, "layers:1")
	if err := Push(ctx, mustRef(t, reg+"/berth/resume:1"), src, img.manifest, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	proxy := startCutProxy(t, reg)
	ref := mustRef(t, proxy.host()+"/berth/resume:1")
	target := img.layers[0] // busybox, the big one
	const cutAfter = 300_000
	if target.Size < 2*cutAfter {
		t.Fatalf("layer %s too small for this test (%d bytes)", target.Digest, target.Size)
	}

	for _, ignoreRange := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignoreRange=%v", ignoreRange), func(t *testing.T) {
			// The cut can land before the client wrote a byte of the layer
			// to its ingest; such a round proves nothing about resuming, so
			// it is tried again with a fresh store.
			var cs *local.Store
			var st os.FileInfo
			for attempt := 0; ; attempt++ {
				cs = newStore(t)
				pctx, cancel := context.WithCancel(ctx)
				defer cancel()
				proxy.set(func(p *cutProxy) {
					p.target, p.cutAfter, p.cancel, p.ignoreRange, p.oneShot = target.Digest, cutAfter, cancel, false, false
					p.ready = func() bool {
						for _, l := range img.layers[1:] {
							if _, err := cs.Info(ctx, l.Digest); err != nil {
								return false
							}
						}
						return true
					}
				})
				_, err := Pull(pctx, ref, cs, PullOptions{Concurrency: 4})
				if err == nil {
					t.Fatal("interrupted pull succeeded")
				}
				if hasBlob(t, cs, target.Digest) || hasBlob(t, cs, img.manifest.Digest) || hasBlob(t, cs, img.config.Digest) {
					t.Fatal("an interrupted pull committed the cut layer, the manifest or the config")
				}
				for _, l := range img.layers[1:] {
					if !hasBlob(t, cs, l.Digest) {
						t.Fatalf("layer %s finished before the cut but is not committed", l.Digest)
					}
				}
				st, err = os.Stat(filepath.Join(cs.Root(), "ingest", target.Digest.Encoded(), "data"))
				if err == nil && st.Size() == 0 && attempt < 4 {
					continue
				}
				if err != nil || st.Size() == 0 || st.Size() > cutAfter {
					t.Fatalf("partial ingest after the cut: %v, %v", st, err)
				}
				break
			}
			have := st.Size()

			// The proxy logs the cut request when its handler ends, which
			// can be after Pull returned: wait for it, so that it is not
			// counted as a request of the resumed pull.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				logged := false
				for _, r := range proxy.requests() {
					logged = logged || r.digest == target.Digest
				}
				if logged {
					break
				}
			}
			proxy.set(func(p *cutProxy) { p.cutAfter, p.ignoreRange = 0, ignoreRange })
			hook := &hashingHook{}
			prog := &recorder{}
			res, err := Pull(ctx, ref, cs, PullOptions{LayerHook: hook.hook, Progress: prog})
			if err != nil {
				t.Fatalf("resumed pull: %v", err)
			}
			sameDescs(t, "layer", res.Layers, img.layers)
			var layerReqs []blobRequest
			for _, r := range proxy.requests() {
				if r.digest != img.config.Digest {
					layerReqs = append(layerReqs, r)
				}
			}
			if len(layerReqs) != 1 || layerReqs[0].digest != target.Digest {
				t.Fatalf("resumed pull requested %+v, want only %s", layerReqs, target.Digest)
			}
			r := layerReqs[0]
			if r.rng != fmt.Sprintf("bytes=%d-", have) {
				t.Fatalf("resumed request Range %q, want bytes=%d-", r.rng, have)
			}
			if !ignoreRange && (r.status != http.StatusPartialContent || r.sent != target.Size-have) {
				t.Fatalf("resumed request: status %d, %d bytes sent; want 206 and %d", r.status, r.sent, target.Size-have)
			}
			if ignoreRange && r.status != http.StatusOK {
				t.Fatalf("registry ignoring Range answered %d", r.status)
			}
			for _, l := range img.layers {
				if hook.got[l.Digest] != l.Digest {
					t.Fatalf("hook saw %s for layer %s", hook.got[l.Digest], l.Digest)
				}
			}
			for _, l := range img.layers[1:] {
				if !prog.has(shortID(l.Digest), "Already exists") {
					t.Fatalf("progress %s", prog)
				}
			}
			if _, err := os.Stat(filepath.Join(cs.Root(), "ingest", target.Digest.Encoded())); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("ingest left after the resumed pull: %v", err)
			}
		})
	}
}

// TestPullRetriesBrokenTransfer: a connection that breaks mid-layer is
// resumed within the same pull.
func TestPullRetriesBrokenTransfer(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	ctx := context.Background()
	src := newStore(t)
	img := loadImage(t, src, "busybox:1.35")
	if err := Push(ctx, mustRef(t, reg+"/berth/retry:1"), src, img.manifest, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	proxy := startCutProxy(t, reg)
	target := img.layers[0]
	proxy.set(func(p *cutProxy) {
		p.target, p.cutAfter, p.ready, p.cancel, p.oneShot = target.Digest, 200_000, nil, func() {}, true
	})
	hook := &hashingHook{}
	cs := newStore(t)
	if _, err := Pull(ctx, mustRef(t, proxy.host()+"/berth/retry:1"), cs, PullOptions{LayerHook: hook.hook}); err != nil {
		t.Fatalf("pull through a breaking connection: %v", err)
	}
	var rngs []string
	for _, r := range proxy.requests() {
		if r.digest == target.Digest {
			rngs = append(rngs, r.rng)
		}
	}
	if len(rngs) != 2 || rngs[0] != "" || rngs[1] != "bytes=200000-" {
		t.Fatalf("requests for the layer: %q", rngs)
	}
	if hook.got[target.Digest] != target.Digest {
		t.Fatalf("hook saw %s across the retry", hook.got[target.Digest])
	}
}
