package reference

import (
	"errors"
	"strings"
	"testing"
)

const dg = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

func TestParseDocker(t *testing.T) {
	for _, c := range []struct{ in, full, familiar, name string }{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"},
		{"busybox:1.35", "docker.io/library/busybox:1.35", "busybox:1.35", "busybox"},
		{"library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"},
		{"index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1", "busybox"},
		{"user/repo", "docker.io/user/repo:latest", "user/repo:latest", "user/repo"},
		{"docker.io/user/repo:v1", "docker.io/user/repo:v1", "user/repo:v1", "user/repo"},
		{"localhost/x", "localhost/x:latest", "localhost/x:latest", "localhost/x"},
		{"localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest", "localhost:5000/x"},
		{"localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b"},
		{"registry.example.com/team/app:2.0", "registry.example.com/team/app:2.0", "registry.example.com/team/app:2.0", "registry.example.com/team/app"},
		{"quay.io/x", "quay.io/x:latest", "quay.io/x:latest", "quay.io/x"},
		{"[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest", "[::1]:5000/x"},
		{"busybox@" + dg, "docker.io/library/busybox@" + dg, "busybox@" + dg, "busybox"},
		{"busybox:1.35@" + dg, "docker.io/library/busybox:1.35@" + dg, "busybox:1.35@" + dg, "busybox"},
		{"localhost:5000/x@" + dg, "localhost:5000/x@" + dg, "localhost:5000/x@" + dg, "localhost:5000/x"},
		{"docker.io/a.b-c__d/e--f_g", "docker.io/a.b-c__d/e--f_g:latest", "a.b-c__d/e--f_g:latest", "a.b-c__d/e--f_g"},
		{"Foo/bar", "Foo/bar:latest", "Foo/bar:latest", "Foo/bar"}, // an upper-case first component is a registry, as in Docker
	} {
		r, err := ParseDocker(c.in)
		if err != nil {
			t.Errorf("ParseDocker(%q): %v", c.in, err)
			continue
		}
		if r.String() != c.full || r.Familiar() != c.familiar || r.FamiliarName() != c.name {
			t.Errorf("ParseDocker(%q) = %q / %q / %q, want %q / %q / %q", c.in, r.String(), r.Familiar(), r.FamiliarName(), c.full, c.familiar, c.name)
		}
	}
}

func TestParseKeepsNoTag(t *testing.T) {
	r, err := Parse("busybox")
	if err != nil || r.Tag != "" || r.String() != "docker.io/library/busybox" {
		t.Fatalf("Parse(busybox) = %+v, %v", r, err)
	}
	if Familiarize("docker.io/library/busybox:1") != "busybox:1" || Familiarize("localhost:5000/x:y") != "localhost:5000/x:y" {
		t.Fatal("Familiarize")
	}
}

func TestParseInvalid(t *testing.T) {
	long := strings.Repeat("a", 256)
	for _, c := range []struct{ in, want string }{
		{"", "empty reference"},
		{"Busybox", "must be lowercase"},
		{"docker.io/User/repo", "must be lowercase"},
		{"busybox:", "bad tag"},
		{"busybox:-x", "bad tag"},
		{"busybox:" + strings.Repeat("t", 129), "bad tag"},
		{"busybox:a b", "bad tag"},
		{"busybox@sha256:abc", "bad digest"},
		{"busybox@md5:abc", "bad digest"},
		{"a//b", "bad repository name component"},
		{"a/-b", "bad repository name component"},
		{"a/b_", "bad repository name component"},
		{"a/b___c", "bad repository name component"},
		{"/busybox", "bad repository name component"},
		{":latest", "no repository name"},
		{"localhost:/x", "empty port"},
		{"localhost:50a/x", "not a number"},
		{"-bad.example/x", "bad registry"},
		{"[::1/x", "unclosed"},
		{long, "longer than 255"},
		{strings.Repeat("ab", 32), "64-byte hexadecimal"},
	} {
		_, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", c.in)
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an ErrInvalid mentioning %q", c.in, err, c.want)
		}
	}
}

func TestIDs(t *testing.T) {
	full := strings.Repeat("ab", 32)
	if !IsFullID(full) || !IsFullID("sha256:"+full) || IsFullID(full[:12]) {
		t.Fatal("IsFullID")
	}
	if !IsIDPrefix("abc") || !IsIDPrefix("sha256:ab") || IsIDPrefix("xyz") || IsIDPrefix("") {
		t.Fatal("IsIDPrefix")
	}
}
