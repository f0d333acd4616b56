package snapshottest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-project/berth/storage/snapshot"
	"github.com/berth-project/berth/storage/snapshot/internal/store"
)

const (
	envCrash     = "BERTH_SNAPSHOTTEST_CRASH"
	envCrashRoot = "BERTH_SNAPSHOTTEST_ROOT"
)

// crashChild runs in a child process (the test binary started again by
// testCrash): it does one operation on the given root and kills itself
// with SIGKILL at the named point.
func crashChild(t *testing.T, newSnapshotter func(t *testing.T, root string) snapshot.Snapshotter) {
	op, point, _ := strings.Cut(os.Getenv(envCrash), ":")
	store.CrashHook = func(p string) {
		if p == point {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	s := newSnapshotter(t, os.Getenv(envCrashRoot))
	var err error
	switch op {
	case "prepare":
		_, err = s.Prepare("k", "base", nil)
	case "commit":
		err = s.Commit("k2", "k", nil)
	case "remove":
		err = s.Remove("k")
	default:
		t.Fatalf("unknown crash operation %q", op)
	}
	t.Fatalf("%s finished (error %v) without reaching the crash point %q", op, err, point)
}

// testCrash kills a process doing Prepare, Commit or Remove at each step
// and checks that the next snapshotter opened on the root sees either the
// whole operation or none of it, and cleans up what the process left.
func testCrash(t *testing.T, newSnapshotter func(t *testing.T, root string) snapshot.Snapshotter) {
	var pattern []string
	for _, part := range strings.Split(t.Name(), "/") {
		if part == "Crash" {
			break
		}
		pattern = append(pattern, "^"+part+"$")
	}
	grace := store.TempGrace
	store.TempGrace = 0
	t.Cleanup(func() { store.TempGrace = grace })
	for _, tc := range []struct{ op, point string }{
		{"prepare", "populated"}, {"prepare", "placed"}, {"prepare", "prepared"},
		{"commit", "commit-recorded"},
		{"remove", "forgotten"}, {"remove", "removed"},
	} {
		t.Run(tc.op+"-"+tc.point, func(t *testing.T) {
			h := newHarness(t, newSnapshotter)
			h.layer("base", "", layer1(t))
			if tc.op != "prepare" {
				h.prepare("k", "base")
				dir, _, err := h.s.ApplyDir("k")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dir+"/written", []byte("w"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			h.s.Close()

			cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(pattern, "/"), "-test.count=1")
			cmd.Env = append(os.Environ(), envCrash+"="+tc.op+":"+tc.point, envCrashRoot+"="+h.root)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the child was not killed at %s: %v\n%s", tc.point, err, out.String())
			}

			h.s = newSnapshotter(t, h.root)
			keys := map[string]snapshot.Kind{}
			h.s.Walk(func(i snapshot.Info) error { keys[i.Key] = i.Kind; return nil })
			switch tc.op {
			case "prepare":
				if kind, ok := keys["k"]; ok {
					if kind != snapshot.KindActive {
						t.Errorf("k is %s", kind)
					}
					c := h.mount(mustMounts(t, h.s, "k"))
					if got := readFile(t, c+"/d/x"); got != "X" {
						t.Errorf("the prepared snapshot: /d/x = %q", got)
					}
				}
				if tc.point == "prepared" && keys["k"] != snapshot.KindActive {
					t.Errorf("killed after the commit, k is missing: %v", keys)
				}
			case "commit":
				_, active := keys["k"]
				_, committed := keys["k2"]
				if active == committed {
					t.Errorf("after a killed commit: %v, want k or k2", keys)
				}
				key := "k"
				if committed {
					h.view("v", "k2")
					key = "v"
				}
				if got := readFile(t, h.mount(mustMounts(t, h.s, key))+"/written"); got != "w" {
					t.Errorf("the snapshot's own file after a killed commit: %q", got)
				}
			case "remove":
				if _, ok := keys["k"]; ok {
					t.Errorf("killed after the record was deleted, k is still there: %v", keys)
				}
			}
			if keys["base"] != snapshot.KindCommitted {
				t.Errorf("base after the crash: %v", keys)
			}
			// The teardown checks that Cleanup (run by New) removed what
			// the killed process left.
		})
	}
}

func mustMounts(t *testing.T, s snapshot.Snapshotter, key string) []snapshot.Mount {
	t.Helper()
	m, err := s.Mounts(key)
	if err != nil {
		t.Fatal(fmt.Errorf("mounts of %s: %w", key, err))
	}
	return m
}
