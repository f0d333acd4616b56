package registry

import (
	"fmt"
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HostPlatform is the platform of this machine (os/arch/variant, with the
// variant Docker uses by default: v8 for arm64, v7 for arm).
func HostPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]" ("linux/arm64/v8"). A bare
// architecture ("arm64") means linux.
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	for _, p := range parts {
		if p == "" {
			return ocispec.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
		}
	}
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		p = ocispec.Platform{OS: "linux", Architecture: parts[0]}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return ocispec.Platform{}, fmt.Errorf("invalid platform %q: want os/arch[/variant]", s)
	}
	return normalizePlatform(p), nil
}

// FormatPlatform renders p as os/arch[/variant].
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// normalizePlatform maps common aliases to the names Go and the OCI spec
// use (x86_64 -> amd64, aarch64 -> arm64).
func normalizePlatform(p ocispec.Platform) ocispec.Platform {
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "i386", "i686":
		p.Architecture = "386"
	}
	if p.Architecture == "arm64" && p.Variant == "8" {
		p.Variant = "v8"
	}
	if p.Architecture == "arm" && len(p.Variant) == 1 {
		p.Variant = "v" + p.Variant
	}
	return p
}

// platformRank says how well an image's platform serves want: 0 for no
// match, higher is better. Without a wanted variant any variant of the
// architecture matches; arm v7 also runs v6 and v5 images, as Docker
// allows.
func platformRank(want, have ocispec.Platform) int {
	want, have = normalizePlatform(want), normalizePlatform(have)
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return 0
	}
	wv, hv := want.Variant, have.Variant
	if want.Architecture == "arm64" {
		if wv == "" {
			wv = "v8"
		}
		if hv == "" {
			hv = "v8"
		}
	}
	switch {
	case wv == hv:
		return 100
	case wv == "":
		return 50
	case want.Architecture == "arm" && hv == "":
		return 40
	case want.Architecture == "arm" && len(wv) == 2 && len(hv) == 2 && hv < wv:
		return 10 + int(hv[1]-'0')
	}
	return 0
}
