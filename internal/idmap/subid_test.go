package idmap

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadSubIDs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(p, []byte("alice:100000:65536\n# comment\nberth:200000:131072\nberth:500000:65536\n"), 0o644)
	got, err := ReadSubIDs(p, "berth")
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{200000, 131072}, {500000, 65536}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if r, err := ReadSubIDs(filepath.Join(t.TempDir(), "none"), "berth"); err != nil || r != nil {
		t.Fatalf("missing file: %v %v", r, err)
	}
	os.WriteFile(p, []byte("berth:x:1\n"), 0o644)
	if _, err := ReadSubIDs(p, "berth"); err == nil {
		t.Fatal("a malformed line was accepted")
	}
}

func TestAllocate(t *testing.T) {
	pool := []Range{{100000, 65536 * 3}}
	s, err := Allocate(pool, nil, 65536)
	if err != nil || s != 100000 {
		t.Fatalf("empty: %d %v", s, err)
	}
	used := []Range{{100000, 65536}, {100000 + 2*65536, 65536}}
	if s, err = Allocate(pool, used, 65536); err != nil || s != 165536 {
		t.Fatalf("hole: %d %v", s, err)
	}
	// Out of order and overlapping the pool's end.
	used = []Range{{165536, 65536}, {100000, 65536}, {231072, 65536}}
	if _, err = Allocate(pool, used, 65536); err == nil {
		t.Fatal("allocated from a full pool")
	}
	if s, err = Allocate(append(pool, Range{1 << 20, 1 << 16}), used, 65536); err != nil || s != 1<<20 {
		t.Fatalf("second pool range: %d %v", s, err)
	}
	if _, err = Allocate(pool, nil, 65536*4); err == nil {
		t.Fatal("allocated more than the pool holds")
	}
}
