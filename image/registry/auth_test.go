package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-project/berth/internal/testutil"
)

// anonymous is a keychain with no credentials at all.
var anonymous = authn.NewMultiKeychain()

// TestBasicAuthRegistry logs in to an htpasswd registry, stores the
// credentials in a Docker config, and pulls and pushes with them.
func TestBasicAuthRegistry(t *testing.T) {
	reg := testutil.StartRegistry(t, map[string]string{"berth": "s3cret"})
	cfgDir := tempDir(t)
	t.Setenv("DOCKER_CONFIG", cfgDir)
	// A config with other keys and another registry's credentials.
	orig := `{"auths":{"other.example:5000":{"auth":"b3RoZXI6cHc="}},"psFormat":"table {{.ID}}","proxies":{"default":{"noProxy":"x"}}}`
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	err := Login(ctx, reg, "berth", "wrong", LoginOptions{})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "invalid username or password") || !strings.Contains(err.Error(), reg) {
		t.Fatalf("login with a wrong password: %v", err)
	}
	if err := Login(ctx, reg, "berth", "s3cret", LoginOptions{}); err != nil {
		t.Fatalf("login: %v", err)
	}
	if err := SaveCredentials(reg, "berth", "s3cret"); err != nil {
		t.Fatal(err)
	}
	cfg := readConfig(t, cfgDir)
	auths := cfg["auths"].(map[string]any)
	entry, _ := auths[reg].(map[string]any)
	if entry["auth"] != base64.StdEncoding.EncodeToString([]byte("berth:s3cret")) {
		t.Fatalf("config.json auths[%s] = %v", reg, auths[reg])
	}
	if auths["other.example:5000"] == nil || cfg["psFormat"] != "table {{.ID}}" || cfg["proxies"] == nil {
		t.Fatalf("config.json lost other entries: %v", cfg)
	}
	if st, err := os.Stat(filepath.Join(cfgDir, "config.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config.json mode: %v %v", st.Mode(), err)
	}

	// Push and pull with the default keychain, which reads that config.
	src := newStore(t)
	img := loadImage(t, src, "busybox:1.35")
	ref := mustRef(t, reg+"/berth/private:1")
	if err := Push(ctx, ref, src, img.manifest, PushOptions{}); err != nil {
		t.Fatalf("push with stored credentials: %v", err)
	}
	res, err := Pull(ctx, ref, newStore(t), PullOptions{})
	if err != nil {
		t.Fatalf("pull with stored credentials: %v", err)
	}
	sameDescs(t, "layer", res.Layers, img.layers)

	// Without credentials, or with wrong ones: a clear error.
	_, err = Pull(ctx, ref, newStore(t), PullOptions{Keychain: anonymous})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous pull from a private registry: %v", err)
	}
	_, err = Pull(ctx, ref, newStore(t), PullOptions{Auth: &authn.Basic{Username: "berth", Password: "nope"}})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "berth/private:1") {
		t.Fatalf("pull with a wrong password: %v", err)
	}

	if err := RemoveCredentials(reg); err != nil {
		t.Fatal(err)
	}
	cfg = readConfig(t, cfgDir)
	auths = cfg["auths"].(map[string]any)
	if _, ok := auths[reg]; ok || auths["other.example:5000"] == nil || cfg["psFormat"] == nil {
		t.Fatalf("config.json after logout: %v", cfg)
	}
	if _, err := Pull(ctx, ref, newStore(t), PullOptions{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("pull after logout: %v", err)
	}
}

func readConfig(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("config.json: %v\n%s", err, b)
	}
	return m
}

// TestCredentialFiles covers config.json edge cases: no file, Docker Hub's
// key, and a credential helper.
func TestCredentialFiles(t *testing.T) {
	dir := filepath.Join(tempDir(t), "new-dir")
	t.Setenv("DOCKER_CONFIG", dir)
	if err := RemoveCredentials("example.com"); err != nil {
		t.Fatalf("logout without a config: %v", err)
	}
	if err := SaveCredentials("", "me", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := SaveCredentials("https://registry.example.com:8443/v2/", "u", "p"); err != nil {
		t.Fatal(err)
	}
	auths := readConfig(t, dir)["auths"].(map[string]any)
	if auths[dockerHubKey] == nil || auths["registry.example.com:8443"] == nil {
		t.Fatalf("auths: %v", auths)
	}
	a, err := authn.DefaultKeychain.Resolve(mustRef(t, "busybox").Context())
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Authorization(); c.Username != "me" || c.Password != "pw" {
		t.Fatalf("default keychain for docker.io: %+v", c)
	}
	if err := RemoveCredentials("docker.io"); err != nil {
		t.Fatal(err)
	}
	if readConfig(t, dir)["auths"].(map[string]any)[dockerHubKey] != nil {
		t.Fatal("docker hub credentials kept after logout")
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveCredentials("x.example", "u", "p"); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("save into a broken config.json: %v", err)
	}

	// A credsStore helper gets the secret; config.json does not.
	bin := tempDir(t)
	store := filepath.Join(bin, "store.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$1 $(cat)\" >> %s\n", store)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-berthtest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credsStore":"berthtest"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SaveCredentials("helper.example", "hu", "hsecret"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCredentials("helper.example"); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(store)
	if !strings.Contains(string(log), `store {"ServerURL":"helper.example","Username":"hu","Secret":"hsecret"}`) ||
		!strings.Contains(string(log), "erase helper.example") {
		t.Fatalf("credential helper calls:\n%s", log)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if strings.Contains(string(raw), "hsecret") || !strings.Contains(string(raw), "berthtest") {
		t.Fatalf("config.json with a credsStore: %s", raw)
	}
}

// tokenServer is a bearer-token registry front: a token endpoint checking
// basic credentials, and a proxy to a real registry that wants the token.
type tokenServer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	scopes   []string
	requests int
}

func startTokenServer(t *testing.T, backend, user, pass string) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	target, _ := url.Parse("http://" + backend)
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"details":"incorrect username or password"}`)
			return
		}
		if r.URL.Query().Get("service") != "berth-test" {
			http.Error(w, "bad service", http.StatusBadRequest)
			return
		}
		ts.mu.Lock()
		ts.scopes = append(ts.scopes, r.URL.Query()["scope"]...)
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token":"berth-token-1","expires_in":300}`)
	})
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ts.requests++
		ts.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer berth-token-1" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="berth-test"`, ts.srv.URL))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		r.Header.Del("Authorization")
		proxy.ServeHTTP(w, r)
	})
	ts.srv = httptest.NewServer(mux)
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) host() string { return strings.TrimPrefix(ts.srv.URL, "http://") }

// TestBearerToken pulls and pushes through the WWW-Authenticate bearer
// flow, and logs in through it.
func TestBearerToken(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	ts := startTokenServer(t, reg, "tok-user", "tok-pass")
	ctx := context.Background()
	src := newStore(t)
	img := loadImage(t, src, "busybox:1.35")
	creds := &authn.Basic{Username: "tok-user", Password: "tok-pass"}
	ref := mustRef(t, ts.host()+"/berth/bearer:1")

	if err := Push(ctx, ref, src, img.manifest, PushOptions{Auth: creds}); err != nil {
		t.Fatalf("push: %v", err)
	}
	res, err := Pull(ctx, ref, newStore(t), PullOptions{Auth: creds})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	sameDescs(t, "layer", res.Layers, img.layers)
	ts.mu.Lock()
	scopes := strings.Join(ts.scopes, " ")
	ts.mu.Unlock()
	if !strings.Contains(scopes, "repository:berth/bearer:push,pull") || !strings.Contains(scopes, "repository:berth/bearer:pull") {
		t.Fatalf("token scopes asked: %s", scopes)
	}

	_, err = Pull(ctx, ref, newStore(t), PullOptions{Auth: &authn.Basic{Username: "tok-user", Password: "bad"}})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("pull with a wrong password: %v", err)
	}
	if err := Login(ctx, ts.host(), "tok-user", "tok-pass", LoginOptions{}); err != nil {
		t.Fatalf("login: %v", err)
	}
	err = Login(ctx, ts.host(), "tok-user", "bad", LoginOptions{})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "invalid username or password") {
		t.Fatalf("login with a wrong password: %v", err)
	}
}
