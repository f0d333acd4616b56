package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestHooks runs all six hook kinds; each appends its name and the state it
// was given to a log on the host.
func TestHooks(t *testing.T) {
	b := newBundle(t, "true")
	log := filepath.Join(b.Dir, "hooks.log")
	script := filepath.Join(b.Dir, "hook.sh")
	// The hook runs on the host (or, for createContainer/startContainer,
	// in the container's namespaces with the host's binaries reachable
	// only through the path given): use busybox from the host.
	os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s ' \"$1\" >> "+log+"\ncat >> "+log+"\necho >> "+log+"\n"), 0o755)
	hook := func(kind string) []specs.Hook {
		return []specs.Hook{{Path: script, Args: []string{"hook.sh", kind}}}
	}
	b.Spec.Hooks = &specs.Hooks{
		Prestart:        hook("prestart"), //nolint:staticcheck
		CreateRuntime:   hook("createRuntime"),
		CreateContainer: hook("createContainer"),
		Poststart:       hook("poststart"),
		Poststop:        hook("poststop"),
	}
	// startContainer runs inside the container: its path resolves there.
	b.Spec.Hooks.StartContainer = []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > /dev/null; exit 0"}}}
	r := b.run("hooks")
	if r.Code != 0 {
		t.Fatalf("run: %d %s", r.Code, r.Stderr)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		kind, js, _ := strings.Cut(line, " ")
		var st specs.State
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("%s hook got no state on stdin: %q", kind, js)
		}
		if st.ID != "hooks" || st.Bundle != b.Dir {
			t.Errorf("%s hook got state %+v", kind, st)
		}
		if kind != "poststop" && st.Pid <= 0 {
			t.Errorf("%s hook got no pid", kind)
		}
		kinds = append(kinds, kind)
	}
	want := "prestart createRuntime createContainer poststart poststop"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("hooks ran as %q, want %q", got, want)
	}
}

func TestHookTimeout(t *testing.T) {
	b := newBundle(t, "true")
	one := 1
	b.Spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: &one}}}
	r := b.run("hook-timeout")
	if r.Code == 0 || !strings.Contains(r.Stderr, "timed out") {
		t.Fatalf("a hook that outlives its timeout: %d %q", r.Code, r.Stderr)
	}
	assertNothingLeft(t, b, "hook-timeout")
}
