package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/content/local"
)

// tempDir is a directory named berth-* removed when the test ends.
func tempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "berth-registry-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newStore(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.New(filepath.Join(tempDir(t), "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ociLayout is the shared test images' OCI layout.
func ociLayout(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "images", "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(p, "index.json")); err != nil {
		t.Fatalf("test images missing: %v", err)
	}
	return p
}

func layoutBlob(t *testing.T, layout string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// image is one image of the layout, as its descriptors.
type image struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
}

// loadImage writes the image the layout names refName (manifest, config,
// layers) into cs.
func loadImage(t *testing.T, cs content.Store, refName string) image {
	t.Helper()
	layout := ociLayout(t)
	var idx ocispec.Index
	if err := json.Unmarshal(layoutBlobFile(t, filepath.Join(layout, "index.json")), &idx); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] != refName {
			continue
		}
		mb := layoutBlob(t, layout, m.Digest)
		var man ocispec.Manifest
		if err := json.Unmarshal(mb, &man); err != nil {
			t.Fatal(err)
		}
		desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}
		for _, b := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			f, err := os.Open(filepath.Join(layout, "blobs", "sha256", b.Digest.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			err = content.WriteBlob(ctx, cs, b, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := content.WriteBlob(ctx, cs, desc, bytes.NewReader(mb)); err != nil {
			t.Fatal(err)
		}
		return image{manifest: desc, config: man.Config, layers: man.Layers}
	}
	t.Fatalf("image %s not in %s", refName, layout)
	return image{}
}

func layoutBlobFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// aptInstall installs Debian packages when the binary is missing.
var aptMu sync.Mutex

func needBinary(t *testing.T, bin, pkg string) string {
	t.Helper()
	aptMu.Lock()
	defer aptMu.Unlock()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing and not root to install %s", bin, pkg)
		}
		t.Skipf("%s missing (apt-get install %s as root)", bin, pkg)
	}
	out, err := exec.Command("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("apt-get install %s: %v\n%s", pkg, err, out)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found after installing %s", bin, pkg)
	}
	return p
}

// testRegistry is a docker-registry process of the test.
type testRegistry struct {
	host string // 127.0.0.1:port
	dir  string
}

// startRegistry runs Debian's docker-registry on a free loopback port with
// storage in a temp dir; users (name -> password) turn on htpasswd auth.
func startRegistry(t *testing.T, users map[string]string) *testRegistry {
	t.Helper()
	bin := needBinary(t, "docker-registry", "docker-registry")
	dir := tempDir(t)
	port := freePort(t)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	auth := ""
	if users != nil {
		var b strings.Builder
		for u, p := range users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s:%s\n", u, h)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: berth-test-secret
%s`, filepath.Join(dir, "data"), host, auth)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer on %s", host)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &testRegistry{host: host, dir: dir}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// recorder is a progress.Reporter keeping every status per id.
type recorder struct {
	mu       sync.Mutex
	statuses map[string][]string
}

func (r *recorder) Update(id, status string, current, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.statuses == nil {
		r.statuses = map[string][]string{}
	}
	l := r.statuses[id]
	if len(l) == 0 || l[len(l)-1] != status {
		r.statuses[id] = append(l, status)
	}
}

func (r *recorder) has(id, status string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.statuses[id] {
		if s == status {
			return true
		}
	}
	return false
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(r.statuses)
	return string(b)
}

// hashingHook is a LayerHook recording the digest of the bytes each layer
// streamed.
type hashingHook struct {
	mu  sync.Mutex
	got map[digest.Digest]digest.Digest
}

func (h *hashingHook) hook(desc ocispec.Descriptor, r io.Reader) error {
	d, err := digest.SHA256.FromReader(r)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.got == nil {
		h.got = map[digest.Digest]digest.Digest{}
	}
	h.got[desc.Digest] = d
	return nil
}

func hasBlob(t *testing.T, cs content.Store, d digest.Digest) bool {
	t.Helper()
	_, err := cs.Info(context.Background(), d)
	return err == nil
}
