// Package reference parses and normalises image references the way Docker
// does: "busybox" is docker.io/library/busybox:latest, "user/repo" is
// docker.io/user/repo, "localhost:5000/x" and "registry.example/x/y" name
// their own registry, and a reference may carry a tag, a digest or both.
// It also gives the familiar (short) form that docker images prints.
//
// The grammar is Docker's (distribution's reference grammar): a domain is
// dot-separated host components with an optional port, or "localhost", or
// a bracketed IPv6 address; path components are lower-case alphanumerics
// joined by ".", "_", "__" or runs of "-"; a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127};
// the whole name is at most 255 characters. Output strings use docker.io,
// never index.docker.io. It imports no other berth package.
package reference

import (
	"errors"
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

const (
	// DefaultDomain is the registry of names without one.
	DefaultDomain = "docker.io"
	// DefaultTag is the tag of references without a tag or digest.
	DefaultTag    = "latest"
	officialRepo  = "library/"
	legacyDomain  = "index.docker.io"
	maxNameLength = 255
)

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid reference format")

// Reference is a normalised image reference.
type Reference struct {
	Domain string        // docker.io, localhost:5000, ...
	Path   string        // library/busybox, user/repo, ...
	Tag    string        // "" when none
	Digest digest.Digest // "" when none
}

// Parse parses s and normalises its name; it adds no tag.
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, fmt.Errorf("%w: empty reference", ErrInvalid)
	}
	if len(s) == 64 && isHex(s) {
		return Reference{}, fmt.Errorf("%w: invalid repository name %q: cannot specify 64-byte hexadecimal strings", ErrInvalid, s)
	}
	name, rest := s, ""
	var r Reference
	if i := strings.IndexByte(s, '@'); i >= 0 {
		name, rest = s[:i], s[i+1:]
		d := digest.Digest(rest)
		if err := d.Validate(); err != nil {
			return Reference{}, fmt.Errorf("%w: %q: bad digest %q: %v", ErrInvalid, s, rest, err)
		}
		r.Digest = d
	}
	// A tag is after the last ':' that follows the last '/'.
	if i := strings.LastIndexByte(name, ':'); i >= 0 && i > strings.LastIndexByte(name, '/') {
		r.Tag = name[i+1:]
		name = name[:i]
		if !validTag(r.Tag) {
			return Reference{}, fmt.Errorf("%w: %q: bad tag %q (letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-')", ErrInvalid, s, r.Tag)
		}
	}
	if name == "" {
		return Reference{}, fmt.Errorf("%w: %q: no repository name", ErrInvalid, s)
	}
	domain, path := splitDomain(name)
	if domain == legacyDomain {
		domain = DefaultDomain
	}
	if domain == DefaultDomain && !strings.Contains(path, "/") {
		path = officialRepo + path
	}
	if err := validDomain(domain); err != nil {
		return Reference{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
	}
	if path != strings.ToLower(path) {
		return Reference{}, fmt.Errorf("%w: %q: repository name must be lowercase", ErrInvalid, s)
	}
	for _, c := range strings.Split(path, "/") {
		if !validPathComponent(c) {
			return Reference{}, fmt.Errorf("%w: %q: bad repository name component %q (lower-case letters and digits, separated by '.', '_', '__' or '-')", ErrInvalid, s, c)
		}
	}
	if n := len(domain) + 1 + len(path); n > maxNameLength {
		return Reference{}, fmt.Errorf("%w: %q: repository name longer than %d characters", ErrInvalid, s, maxNameLength)
	}
	r.Domain, r.Path = domain, path
	return r, nil
}

// ParseDocker parses s as docker pull/run/tag do: normalised, with the
// tag "latest" when s has neither tag nor digest.
func ParseDocker(s string) (Reference, error) {
	r, err := Parse(s)
	if err != nil {
		return r, err
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}

// splitDomain separates the registry from the repository path as Docker
// does: the first component is a registry only when it has a '.' or a
// ':' or is "localhost" (or has upper-case letters, which a path may not).
func splitDomain(name string) (string, string) {
	i := strings.IndexByte(name, '/')
	if i < 0 {
		return DefaultDomain, name
	}
	first := name[:i]
	if first != "localhost" && !strings.ContainsAny(first, ".:") && strings.ToLower(first) == first {
		return DefaultDomain, name
	}
	return first, name[i+1:]
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func validTag(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if isAlnum(c) || c == '_' || (i > 0 && (c == '.' || c == '-')) {
			continue
		}
		return false
	}
	return true
}

// validPathComponent: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
func validPathComponent(c string) bool {
	if c == "" {
		return false
	}
	i := 0
	alnum := func() bool {
		start := i
		for i < len(c) && (c[i] >= 'a' && c[i] <= 'z' || c[i] >= '0' && c[i] <= '9') {
			i++
		}
		return i > start
	}
	if !alnum() {
		return false
	}
	for i < len(c) {
		switch {
		case c[i] == '.':
			i++
		case strings.HasPrefix(c[i:], "__"):
			i += 2
		case c[i] == '_':
			i++
		case c[i] == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if !alnum() {
			return false
		}
	}
	return true
}

func validDomain(d string) error {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return fmt.Errorf("bad registry %q: unclosed '['", d)
		}
		host, port = d[1:end], d[end+1:]
		if !strings.Contains(host, ":") || strings.Trim(strings.ToLower(host), "0123456789abcdef:.") != "" {
			return fmt.Errorf("bad registry %q: not an IPv6 address", d)
		}
		if port != "" {
			if port[0] != ':' {
				return fmt.Errorf("bad registry %q", d)
			}
			port = port[1:]
			if port == "" {
				return fmt.Errorf("bad registry %q: empty port", d)
			}
		}
	} else {
		if i := strings.IndexByte(d, ':'); i >= 0 {
			host, port = d[:i], d[i+1:]
			if port == "" {
				return fmt.Errorf("bad registry %q: empty port", d)
			}
		}
		for _, c := range strings.Split(host, ".") {
			if c == "" || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
				return fmt.Errorf("bad registry %q", d)
			}
			for i := 0; i < len(c); i++ {
				if !isAlnum(c[i]) && c[i] != '-' {
					return fmt.Errorf("bad registry %q", d)
				}
			}
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return fmt.Errorf("bad registry %q: port %q is not a number", d, port)
		}
	}
	return nil
}

// Name is the full repository name, e.g. docker.io/library/busybox.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full reference: name, ":tag" and "@digest" when set.
func (r Reference) String() string { return r.Name() + r.suffix() }

func (r Reference) suffix() string {
	s := ""
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// FamiliarName is the repository name as Docker shows it: "busybox",
// "user/repo", "localhost:5000/x".
func (r Reference) FamiliarName() string {
	if r.Domain == DefaultDomain {
		return strings.TrimPrefix(r.Path, officialRepo)
	}
	return r.Name()
}

// Familiar is the reference as Docker shows it: "busybox:latest",
// "localhost:5000/x@sha256:...".
func (r Reference) Familiar() string { return r.FamiliarName() + r.suffix() }

// WithTag returns r with the tag t and no digest.
func (r Reference) WithTag(t string) (Reference, error) {
	if !validTag(t) {
		return Reference{}, fmt.Errorf("%w: bad tag %q", ErrInvalid, t)
	}
	return Reference{Domain: r.Domain, Path: r.Path, Tag: t}, nil
}

// WithDigest returns r with the digest d and no tag.
func (r Reference) WithDigest(d digest.Digest) Reference {
	return Reference{Domain: r.Domain, Path: r.Path, Digest: d}
}

// TrimNamed returns the repository alone (no tag, no digest).
func (r Reference) TrimNamed() Reference { return Reference{Domain: r.Domain, Path: r.Path} }

// Familiarize turns a full reference string into its familiar form; a
// string that does not parse is returned as it is.
func Familiarize(s string) string {
	r, err := Parse(s)
	if err != nil {
		return s
	}
	return r.Familiar()
}

// IsFullID reports whether s is a full image ID: 64 hex digits,
// optionally "sha256:"-prefixed.
func IsFullID(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) != 64 {
		return false
	}
	return isHex(s)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// IsIDPrefix reports whether s can be a (short) image ID: hex digits,
// optionally after "sha256:", 64 at most.
func IsIDPrefix(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	return s != "" && len(s) <= 64 && isHex(s)
}
