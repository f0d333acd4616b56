package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64":    "linux/amd64",
		"linux/x86_64":   "linux/amd64",
		"arm64":          "linux/arm64",
		"linux/arm64/8":  "linux/arm64/v8",
		"linux/arm/7":    "linux/arm/v7",
		"Linux/AMD64":    "linux/amd64",
		"windows/amd64":  "windows/amd64",
		"linux/aarch64":  "linux/arm64",
		"linux/arm/v6":   "linux/arm/v6",
		"linux/riscv64":  "linux/riscv64",
		"linux/ppc64le ": "linux/ppc64le",
	} {
		p, err := ParsePlatform(in)
		if err != nil || FormatPlatform(p) != want {
			t.Errorf("ParsePlatform(%q) = %s, %v; want %s", in, FormatPlatform(p), err, want)
		}
	}
	for _, bad := range []string{"", "linux/", "a/b/c/d", "/amd64"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) succeeded", bad)
		}
	}
}

func TestSelectPlatform(t *testing.T) {
	mk := func(os, arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Platform: &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	list := []ocispec.Descriptor{mk("linux", "amd64", ""), mk("linux", "arm", "v6"), mk("linux", "arm", "v7"), mk("linux", "arm64", "v8"), mk("unknown", "unknown", "")}
	for want, idx := range map[string]int{
		"linux/amd64":    0,
		"linux/arm/v7":   2,
		"linux/arm/v6":   1,
		"linux/arm/v8":   2, // the newest variant it runs
		"linux/arm":      1, // any variant: the first listed
		"linux/arm64":    3,
		"linux/arm64/v8": 3,
	} {
		p, _ := ParsePlatform(want)
		got, err := selectPlatform(list, p)
		if err != nil || got.Platform != list[idx].Platform {
			t.Errorf("%s: got %v, %v; want entry %d", want, got.Platform, err, idx)
		}
	}
	_, err := selectPlatform(list, ocispec.Platform{OS: "linux", Architecture: "s390x"})
	if err == nil || err.Error() != "no manifest for platform linux/s390x; available: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8" {
		t.Errorf("missing platform: %v", err)
	}
	_, err = selectPlatform(list[:2], ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v5"})
	if err == nil {
		t.Error("arm v5 host selected a v6 image")
	}
}

// TestInsecureTLS: a registry with a certificate nobody signed is refused,
// unless Insecure.
func TestInsecureTLS(t *testing.T) {
	f := &fakeRegistry{manifests: map[string][]byte{}}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	// 127.0.0.1 gets an http fallback, which this https-only server answers
	// with an error; the certificate error must surface either way.
	_, err := Pull(context.Background(), mustRef(t, host+"/x:t"), newStore(t), PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("pull from an unverified https registry: %v", err)
	}
	_, err = Pull(context.Background(), mustRef(t, host+"/x:t"), newStore(t), PullOptions{Insecure: true})
	if err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") && !strings.Contains(err.Error(), "404") {
		t.Fatalf("insecure pull should reach the registry (and find no manifest): %v", err)
	}
	if err := Login(context.Background(), host, "u", "p", LoginOptions{Insecure: true}); err != nil {
		t.Fatalf("insecure login to a registry without auth: %v", err)
	}
}

// TestPlainHTTPOnlyForLoopback: a registry on a private address is not
// reached over plain http unless Insecure (Docker's rule).
func TestPlainHTTPOnlyForLoopback(t *testing.T) {
	g := httpGuard{inner: http.DefaultTransport, registry: "10.1.2.3:5000"}
	req, _ := http.NewRequest(http.MethodGet, "http://10.1.2.3:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "insecure") {
		t.Fatalf("plain http to a private registry: %v", err)
	}
	for host, want := range map[string]bool{"127.0.0.1:5000": true, "127.8.0.1": true, "localhost:5000": true, "[::1]:5000": true, "10.0.0.1:5000": false, "registry.local:5000": false} {
		if isLoopback(host) != want {
			t.Errorf("isLoopback(%s) = %v", host, !want)
		}
	}
}
