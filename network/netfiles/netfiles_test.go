package netfiles

import (
	"net"
	"strings"
	"testing"
)

func TestHosts(t *testing.T) {
	b, err := Hosts(HostsConfig{Hostname: "web", IPs: []net.IP{net.ParseIP("172.18.0.2")},
		ExtraHosts: []string{"db:10.0.0.5", "v6=[fd00::1]"}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n",
		"10.0.0.5\tdb\n", "fd00::1\tv6\n", "172.18.0.2\tweb\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("hosts lacks %q:\n%s", want, s)
		}
	}
	if _, err := Hosts(HostsConfig{ExtraHosts: []string{"db:notanip"}}); err == nil || !strings.Contains(err.Error(), "notanip") {
		t.Errorf("bad add-host: %v", err)
	}
}

const host = "# generated\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\noptions edns0\n"

func TestResolvConf(t *testing.T) {
	for name, c := range map[string]struct {
		cfg  ResolvConfig
		want string
	}{
		"user network": {ResolvConfig{Host: []byte(host), Embedded: net.ParseIP("172.18.0.1")},
			"nameserver 172.18.0.1\nsearch corp.example\noptions edns0\n"},
		"default bridge drops loopback": {ResolvConfig{Host: []byte(host)},
			"nameserver 10.1.1.1\nsearch corp.example\noptions edns0\n"},
		"only loopback falls back": {ResolvConfig{Host: []byte("nameserver 127.0.0.53\n")},
			"nameserver 8.8.8.8\nnameserver 8.8.4.4\n"},
		"flags": {ResolvConfig{Host: []byte(host), Nameservers: []string{"9.9.9.9"}, Search: []string{"a.example"}, Options: []string{"ndots:2"}},
			"nameserver 9.9.9.9\nsearch a.example\noptions ndots:2\n"},
		"host network": {ResolvConfig{Host: []byte(host), HostNetwork: true},
			"nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\noptions edns0\n"},
	} {
		if got := string(ResolvConf(c.cfg)); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", name, got, c.want)
		}
	}
}

func TestHostname(t *testing.T) {
	if string(Hostname("web")) != "web\n" {
		t.Fatal("hostname")
	}
}
