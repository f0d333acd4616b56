package image

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseChanges(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ConfigChanges
	}{
		{`CMD ["a", "b c"]`, ConfigChanges{Cmd: []string{"a", "b c"}}},
		{`cmd echo hi`, ConfigChanges{Cmd: []string{"/bin/sh", "-c", "echo hi"}}},
		{`CMD []`, ConfigChanges{Cmd: []string{}}},
		{`ENTRYPOINT ["/x"]`, ConfigChanges{Entrypoint: []string{"/x"}}},
		{`ENV A=1 B="two words" C='x y'`, ConfigChanges{Env: []string{"A=1", "B=two words", "C=x y"}}},
		{`ENV LEGACY some value`, ConfigChanges{Env: []string{"LEGACY=some value"}}},
		{`ENV A=with\ space`, ConfigChanges{Env: []string{"A=with space"}}},
		{`LABEL a=b "c d"=e`, ConfigChanges{Labels: map[string]string{"a": "b", "c d": "e"}}},
		{`EXPOSE 80 53/udp 8000-8001`, ConfigChanges{ExposedPorts: []string{"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}}},
		{`VOLUME ["/a", "/b"]`, ConfigChanges{Volumes: []string{"/a", "/b"}}},
		{`VOLUME /a /b`, ConfigChanges{Volumes: []string{"/a", "/b"}}},
		{`WORKDIR /srv`, ConfigChanges{WorkingDir: "/srv"}},
		{`USER nobody`, ConfigChanges{User: "nobody"}},
		{`STOPSIGNAL SIGINT`, ConfigChanges{StopSignal: "SIGINT"}},
		{`ONBUILD RUN make`, ConfigChanges{OnBuild: []string{"RUN make"}}},
	} {
		got, err := ParseChanges([]string{c.in})
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"RUN make", "unknown instruction RUN"},
		{"", "empty instruction"},
		{"ENV", "needs an argument"},
		{"ENV A", "has no value"},
		{"LABEL novalue", "not key=value"},
		{"EXPOSE 80/foo", "protocol"},
		{"EXPOSE 0", "not a port"},
		{"EXPOSE 90-80", "not a port"},
		{"EXPOSE 70000", "not a port"},
		{`ENV A="unterminated`, "unterminated"},
		{`VOLUME ["/a"`, "bad JSON"},
	} {
		_, err := ParseChanges([]string{c.in})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), strconv.Quote(c.in)) {
			t.Errorf("%q: %v, want an error with %q", c.in, err, c.want)
		}
	}
}

func TestApplyChanges(t *testing.T) {
	cfg := v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "A=0"}, WorkingDir: "/app"}
	ConfigChanges{Env: []string{"A=1", "B=2"}, WorkingDir: "sub", Entrypoint: []string{"/e"}, Labels: map[string]string{"k": "v"}}.Apply(&cfg)
	if cfg.Cmd != nil || !reflect.DeepEqual(cfg.Entrypoint, []string{"/e"}) || !reflect.DeepEqual(cfg.Env, []string{"PATH=/bin", "A=1", "B=2"}) || cfg.WorkingDir != "/app/sub" || cfg.Labels["k"] != "v" {
		t.Errorf("applied: %+v", cfg)
	}
	ConfigChanges{Entrypoint: []string{"/e2"}, Cmd: []string{"x"}}.Apply(&cfg)
	if !reflect.DeepEqual(cfg.Cmd, []string{"x"}) {
		t.Errorf("CMD with ENTRYPOINT: %+v", cfg)
	}
}
