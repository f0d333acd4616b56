package cgroups

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestNewResolvesPaths(t *testing.T) {
	m, err := New("/berth/test-x")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Paths()) == 0 {
		t.Fatal("no cgroup hierarchy found")
	}
	for k, p := range m.Paths() {
		if !strings.HasPrefix(p, Root+"/") || !strings.HasSuffix(p, "/berth/test-x") {
			t.Errorf("hierarchy %q: path %s", k, p)
		}
	}
	if Detect() == Unified {
		if _, ok := m.Paths()[""]; !ok || len(m.Paths()) != 1 {
			t.Errorf("v2 host: paths %v, want only the unified one", m.Paths())
		}
	}
	rel, err := New("child")
	if err != nil {
		t.Fatal(err)
	}
	own, _ := ownCgroups()
	for k, p := range rel.Paths() {
		if filepath.Base(p) != "child" {
			t.Errorf("relative path in %q: %s", k, p)
		}
		_ = own
	}
	if _, err := New("/a/../../etc"); err == nil {
		t.Error("a path with .. was accepted")
	}
}
