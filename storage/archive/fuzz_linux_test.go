package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzApply feeds arbitrary streams (seeded with crafted layers from
// testdata/fuzz/FuzzApply) to Apply in both whiteout modes and checks
// that it never panics and never touches anything outside the target.
func FuzzApply(f *testing.F) {
	f.Add(layer(f, file("../../etc/berth-x", "x"), symlink("evil", "/"), file("evil/etc/berth-x", "y")))
	f.Add(layer(f, dir("d/"), file("d/f", "f"), file("d/.wh..wh..opq", ""), file(".wh.d", ""), hardlink("h", "d/f")))
	// One sandbox per process, emptied between inputs: cheap iterations
	// keep the fuzzer (and its minimizer) fast.
	s := newSandbox(f)
	upper := filepath.Join(s.base, "a", "b", "upper")
	// Emptying dst changes its parent's mtime: pin it.
	pin := func(t testing.TB) {
		if err := os.Chtimes(filepath.Dir(s.dst), testTime, testTime); err != nil {
			t.Fatal(err)
		}
	}
	pin(f)
	s.before = snapshot(f, s.base, s.dst)
	reset := func(t *testing.T, d string) {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		pin(t)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		reset(t, s.dst)
		os.RemoveAll(upper)
		Apply(s.dst, bytes.NewReader(data), ApplyOptions{}) // errors are fine; escapes are not
		s.check(t)
		reset(t, upper)
		Apply(upper, bytes.NewReader(data), ApplyOptions{Whiteouts: WhiteoutOverlay, SkipDevices: true})
		os.RemoveAll(upper)
		pin(t)
		s.check(t)
	})
}
