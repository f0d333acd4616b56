package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// assertNothingLeft checks that a failed create left no state, cgroup or process.
func assertNothingLeft(t *testing.T, b *bundle, id string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(b.Root, id)); !os.IsNotExist(err) {
		t.Errorf("failed create left its state directory %s", filepath.Join(b.Root, id))
	}
	for _, ctl := range []string{"memory", "pids", "cpu", "devices", "freezer"} {
		p := filepath.Join("/sys/fs/cgroup", ctl, "berth", id)
		if _, err := os.Stat(p); err == nil {
			t.Errorf("failed create left cgroup %s", p)
		}
	}
	if out := b.runc("list", "-q").Stdout; strings.Contains(out, id) {
		t.Errorf("failed create still listed: %q", out)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(b *bundle)
		raw    string // config.json content instead of the spec
		want   string // the error must name this
	}{
		{name: "invalid-json", raw: `{"ociVersion": "1.2.0", "process": `, want: "config.json is not valid JSON"},
		{name: "no-process", mutate: func(b *bundle) { b.Spec.Process = nil }, want: "process"},
		{name: "empty-args", mutate: func(b *bundle) { b.Spec.Process.Args = nil }, want: "process.args"},
		{name: "relative-cwd", mutate: func(b *bundle) { b.Spec.Process.Cwd = "tmp" }, want: "process.cwd"},
		{name: "fd-cwd", mutate: func(b *bundle) { b.Spec.Process.Cwd = "/proc/self/fd/7" }, want: "process.cwd"},
		{name: "no-rootfs", mutate: func(b *bundle) { b.Spec.Root.Path = "nonexistent" }, want: "root.path"},
		{name: "unknown-ns", mutate: func(b *bundle) {
			b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		}, want: `"bogus"`},
		{name: "bad-ns-path", mutate: func(b *bundle) {
			b.Spec.Linux.Namespaces[0].Path = "/proc/999999999/ns/pid"
		}, want: "linux.namespaces[0].path"},
		{name: "bad-rlimit", mutate: func(b *bundle) {
			b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1}}
		}, want: "RLIMIT_BOGUS"},
		{name: "userns-no-maps", mutate: func(b *bundle) {
			b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, want: "uidMappings"},
		{name: "missing-program", mutate: func(b *bundle) { b.Spec.Process.Args = []string{"/nope"} }, want: "/nope"},
		{name: "prestart-fails", mutate: func(b *bundle) {
			b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/false"}}}
		}, want: "createRuntime"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBundle(t, "true")
			if tc.mutate != nil {
				tc.mutate(b)
			}
			b.write()
			if tc.raw != "" {
				os.WriteFile(filepath.Join(b.Dir, "config.json"), []byte(tc.raw), 0o644)
			}
			id := "bad-" + tc.name
			r := b.runc("run", "--bundle", b.Dir, id)
			if r.Code == 0 {
				t.Fatalf("run succeeded; want an error naming %s", tc.want)
			}
			if !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("error %q does not name %q", strings.TrimSpace(r.Stderr), tc.want)
			}
			assertNothingLeft(t, b, id)
		})
	}
}

func TestBadIDs(t *testing.T) {
	b := newBundle(t, "sleep", "100")
	b.create("dup")
	b.write()
	r := b.runc("create", "--bundle", b.Dir, "dup")
	if r.Code == 0 || !strings.Contains(r.Stderr, "already exists") {
		t.Errorf("second create of the same id: %d %q", r.Code, r.Stderr)
	}
	if st := b.state("dup"); st.Status != "created" {
		t.Errorf("the failed duplicate create damaged the first container: %s", st.Status)
	}
	for _, id := range []string{"a/b", "..", "x y"} {
		r := b.runc("create", "--bundle", b.Dir, id)
		if r.Code == 0 || !strings.Contains(r.Stderr, "invalid container id") {
			t.Errorf("create %q: %d %q", id, r.Code, r.Stderr)
		}
	}
	if r := b.runc("state", "nope"); r.Code == 0 || !strings.Contains(r.Stderr, "does not exist") {
		t.Errorf("state of a missing container: %d %q", r.Code, r.Stderr)
	}
}
