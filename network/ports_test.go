package network

import (
	"errors"
	"testing"
)

func TestParsePortSpec(t *testing.T) {
	for spec, want := range map[string]PortMapping{
		"80":                  {ContainerPort: 80, Proto: "tcp"},
		"8080:80":             {HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		"127.0.0.1:8080:80":   {HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		"127.0.0.1::80/udp":   {HostIP: "127.0.0.1", ContainerPort: 80, Proto: "udp"},
		"[::1]:8080:80":       {HostIP: "::1", HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		"8000-8001:80-81/tcp": {HostPort: 8000, HostPortEnd: 8001, ContainerPort: 80, ContainerPortEnd: 81, Proto: "tcp"},
		"9000-9010:80":        {HostPort: 9000, HostPortEnd: 9010, ContainerPort: 80, Proto: "tcp"},
		"0.0.0.0:53:53/udp":   {HostIP: "0.0.0.0", HostPort: 53, ContainerPort: 53, Proto: "udp"},
	} {
		got, err := ParsePortSpec(spec)
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "abc", "80/icmp", "1:2:3:4", "8000-8002:80-81", "x:80:80", "0", "90-80", "[::1:80:80", "70000"} {
		if _, err := ParsePortSpec(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: want ErrInvalid, got %v", bad, err)
		}
	}
}

func TestPortMappingString(t *testing.T) {
	if s := (PortMapping{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}).String(); s != "80/tcp -> 0.0.0.0:8080" {
		t.Fatal(s)
	}
	if s := (PortMapping{HostIP: "::1", HostPort: 8080, ContainerPort: 80, Proto: "udp"}).String(); s != "80/udp -> [::1]:8080" {
		t.Fatal(s)
	}
}

func TestIPOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"", "127.0.0.1", true}, {"0.0.0.0", "127.0.0.1", true}, {"127.0.0.1", "127.0.0.2", false},
		{"::", "::1", true}, {"0.0.0.0", "::1", false}, {"127.0.0.1", "127.0.0.1", true},
	} {
		if got := ipOverlap(c.a, c.b); got != c.want {
			t.Errorf("ipOverlap(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
