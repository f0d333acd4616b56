package e2e

// kill -9 of pull and load at many moments: layers are extracted while
// they download or pass through the archive, into temporary snapshots, and
// only placed on their parents and committed once every blob verified.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// killAt starts berth with args in s, kills it with SIGKILL after d and
// reports whether it had finished by then.
func killAt(t *testing.T, s *store, d time.Duration, args ...string) (finished bool) {
	t.Helper()
	c := s.cmd(args...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
	}
	c.Process.Kill()
	<-done
	return false
}

// checkAfterKill: the store lists no image, or ref complete (its ID, and
// it runs); it is removed then so that the next round starts empty.
func checkAfterKill(t *testing.T, s *store, ref, want string, d time.Duration) {
	t.Helper()
	ids := strings.Fields(s.must(t, "images", "-a", "-q", "--no-trunc"))
	switch {
	case len(ids) == 0:
	case len(ids) == 1 && ids[0] == want:
		if out := s.runImage(t, ref, "cat", "/var/www/html/index.html"); !strings.Contains(out, "served from a container") {
			t.Errorf("killed after %v: the listed image does not run right: %q", d, out)
		}
		s.must(t, "rmi", ref)
	default:
		t.Fatalf("killed after %v: images %v, want none or %s", d, ids, want)
	}
}

var killDelays = []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond,
	350 * time.Millisecond, 500 * time.Millisecond, 700 * time.Millisecond, 1000 * time.Millisecond, 1500 * time.Millisecond}

// TestLoadKilledAtAnyMoment kills `berth load` of web:1 at moments from
// its start to its end: the store never lists a partial or wrong image,
// and the next load completes and the image runs.
func TestLoadKilledAtAnyMoment(t *testing.T) {
	main := mainStore()
	want := main.imageID(t, "web:1")
	archive := filepath.Join(t.TempDir(), "web.tar")
	main.must(t, "save", "-o", archive, "web:1")
	s := newStore(t)
	for _, d := range killDelays {
		finished := killAt(t, s, d, "load", "-q", "-i", archive)
		checkAfterKill(t, s, "web:1", want, d)
		if finished {
			break
		}
	}
	if out := s.must(t, "load", "-i", archive); !strings.HasSuffix(out, "\nLoaded image: web:1\n") {
		t.Errorf("load after the kills printed %q", out)
	}
	if got := s.imageID(t, "web:1"); got != want {
		t.Errorf("loaded ID %s, want %s", got, want)
	}
	if out := s.runImage(t, "web:1", "cat", "/var/www/html/index.html"); !strings.Contains(out, "served from a container") {
		t.Errorf("web:1 after the killed loads: %q", out)
	}
}

// TestPullKilledAtAnyMoment is the same for `berth pull` from a registry.
func TestPullKilledAtAnyMoment(t *testing.T) {
	ref, want := pushWeb(t)
	s := newStore(t)
	for _, d := range killDelays {
		finished := killAt(t, s, d, "pull", "-q", ref)
		checkAfterKill(t, s, ref, want, d)
		if finished {
			break
		}
	}
	s.must(t, "pull", "-q", ref)
	if got := s.imageID(t, ref); got != want {
		t.Errorf("pulled ID %s, want %s", got, want)
	}
	if out := s.runImage(t, ref, "cat", "/var/www/html/index.html"); !strings.Contains(out, "served from a container") {
		t.Errorf("web:1 after the killed pulls: %q", out)
	}
}
