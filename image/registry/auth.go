package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/berth-project/berth/internal/atomicfile"
)

// LoginOptions tune Login.
type LoginOptions struct {
	// Insecure and Transport are as in PullOptions.
	Insecure  bool
	Transport http.RoundTripper
}

// dockerHubKey is the key Docker uses for Docker Hub in config.json.
const dockerHubKey = "https://index.docker.io/v1/"

// parseRegistry accepts a registry as a host[:port] or URL; "" and the
// Docker Hub aliases mean Docker Hub.
func parseRegistry(registry string, insecure bool) (name.Registry, error) {
	host := hostOf(strings.TrimSpace(registry))
	if host == "" {
		host = name.DefaultRegistry
	}
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("invalid registry %q: %w", registry, err)
	}
	return reg, nil
}

// Login checks username and password against the registry's /v2/ endpoint
// (basic auth, or the bearer token flow the registry asks for). It does
// not store them: see SaveCredentials.
func Login(ctx context.Context, registry, username, password string, opts LoginOptions) error {
	reg, err := parseRegistry(registry, opts.Insecure)
	if err != nil {
		return err
	}
	if username == "" {
		return fmt.Errorf("login to %s: username is empty", reg.RegistryStr())
	}
	r := remote{insecure: opts.Insecure, transport: opts.Transport}
	auth := authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	rt, err := transport.NewWithContext(ctx, reg, auth, r.roundTripper(reg), nil)
	if err != nil {
		return loginError(reg, classify(err))
	}
	u := url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return fmt.Errorf("login to %s: %w", reg.RegistryStr(), err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return loginError(reg, classify(err))
	}
	return nil
}

func loginError(reg name.Registry, err error) error {
	if errors.Is(err, ErrUnauthorized) {
		return fmt.Errorf("login to %s: invalid username or password: %w", reg.RegistryStr(), err)
	}
	return fmt.Errorf("login to %s: %w", reg.RegistryStr(), err)
}

// ConfigDir is Docker's client configuration directory: $DOCKER_CONFIG, or
// ~/.docker.
func ConfigDir() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".docker")
}

// credentialKey is the config.json key of a registry, as Docker writes it.
func credentialKey(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return dockerHubKey
	}
	return reg.RegistryStr()
}

// SaveCredentials stores username and password for registry in Docker's
// config.json (ConfigDir()), as `docker login` does: in the credential
// helper the file names for it (credHelpers, credsStore), else base64 in
// "auths". Other entries and keys of the file are kept; the file is
// replaced atomically, mode 0600.
func SaveCredentials(registry, username, password string) error {
	reg, err := parseRegistry(registry, false)
	if err != nil {
		return err
	}
	key := credentialKey(reg)
	return updateConfig(func(cfg map[string]json.RawMessage, auths map[string]json.RawMessage) error {
		if helper := credentialHelper(cfg, key); helper != "" {
			in, _ := json.Marshal(struct{ ServerURL, Username, Secret string }{key, username, password})
			if err := runHelper(helper, "store", in); err != nil {
				return err
			}
			auths[key] = json.RawMessage(`{}`)
			return nil
		}
		entry, _ := json.Marshal(map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(username + ":" + password)),
		})
		auths[key] = entry
		return nil
	})
}

// RemoveCredentials forgets the credentials of registry (docker logout):
// its "auths" entries and, when a credential helper holds them, the
// helper's copy. Removing credentials that are not there is not an error.
func RemoveCredentials(registry string) error {
	reg, err := parseRegistry(registry, false)
	if err != nil {
		return err
	}
	key := credentialKey(reg)
	return updateConfig(func(cfg map[string]json.RawMessage, auths map[string]json.RawMessage) error {
		if helper := credentialHelper(cfg, key); helper != "" {
			if err := runHelper(helper, "erase", []byte(key)); err != nil &&
				!strings.Contains(strings.ToLower(err.Error()), "not found") {
				return err
			}
		}
		for k := range auths {
			h := hostOf(k)
			if k == key || h == reg.RegistryStr() || (key == dockerHubKey && (h == "index.docker.io" || h == "docker.io" || h == "registry-1.docker.io")) {
				delete(auths, k)
			}
		}
		return nil
	})
}

// credentialHelper returns the helper config.json names for key.
func credentialHelper(cfg map[string]json.RawMessage, key string) string {
	var helpers map[string]string
	if raw, ok := cfg["credHelpers"]; ok {
		_ = json.Unmarshal(raw, &helpers)
	}
	if h := helpers[key]; h != "" {
		return h
	}
	if h := helpers[hostOf(key)]; h != "" {
		return h
	}
	var store string
	if raw, ok := cfg["credsStore"]; ok {
		_ = json.Unmarshal(raw, &store)
	}
	return store
}

// runHelper runs docker-credential-<helper> <action> with in on stdin.
func runHelper(helper, action string, in []byte) error {
	cmd := exec.Command("docker-credential-"+helper, action)
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("credential helper docker-credential-%s %s: %w: %s", helper, action, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// updateConfig reads config.json, lets fn change it and its "auths", and
// writes it back atomically.
func updateConfig(fn func(cfg, auths map[string]json.RawMessage) error) error {
	dir := ConfigDir()
	path := filepath.Join(dir, "config.json")
	cfg := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, &cfg); err != nil {
				return fmt.Errorf("parse %s: %w", path, err)
			}
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("read docker config: %w", err)
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := cfg["auths"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("parse %s: auths: %w", path, err)
		}
	}
	if err := fn(cfg, auths); err != nil {
		return err
	}
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	cfg["auths"] = raw
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create docker config dir: %w", err)
	}
	// Follow a symlinked config.json, as Docker does, so the link survives.
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	if err := atomicfile.WriteFile(path, append(out, '\n'), 0o600, true); err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	return nil
}
