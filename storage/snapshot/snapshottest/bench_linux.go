package snapshottest

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
	"github.com/berth-project/berth/storage/archive"
	"github.com/berth-project/berth/storage/snapshot"
)

// Benchmark measures what a container start costs the snapshotter: on the
// 4-layer chain of ../shared/images' layers:1, Prepare a root filesystem,
// mount it, unmount it and Remove it. It reports the median of each step
// besides the total per operation.
func Benchmark(b *testing.B, newSnapshotter func(root string) (snapshot.Snapshotter, error)) {
	if os.Geteuid() != 0 {
		b.Skip("mounting needs root")
	}
	base, err := os.MkdirTemp("", "berth-snapshotbench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	s, err := newSnapshotter(filepath.Join(base, "root"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := removeAll(s); err != nil {
			b.Error(err)
		}
		s.Close()
	}()
	parent := ""
	for i, p := range ImageLayers(b, filepath.Join(testutil.SharedImages(b), "oci"), "layers:1") {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("layer%d", i)
		if _, err := s.Prepare(name+"-unpack", parent, nil); err != nil {
			b.Fatal(err)
		}
		dir, overlay, err := s.ApplyDir(name + "-unpack")
		if err != nil {
			b.Fatal(err)
		}
		opts := archive.ApplyOptions{}
		if overlay {
			opts.Whiteouts = archive.WhiteoutOverlay
		}
		if _, err := archive.Apply(dir, zr, opts); err != nil {
			b.Fatal(err)
		}
		f.Close()
		if err := s.Commit(name, name+"-unpack", nil); err != nil {
			b.Fatal(err)
		}
		parent = name
	}
	target := filepath.Join(base, "rootfs")
	if err := os.Mkdir(target, 0o755); err != nil {
		b.Fatal(err)
	}
	var steps [4][]time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		key := fmt.Sprintf("container%d", i)
		t0 := time.Now()
		mounts, err := s.Prepare(key, parent, nil)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := snapshot.MountAll(mounts, target); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := snapshot.UnmountAll(target); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := s.Remove(key); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		for j, d := range []time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)} {
			steps[j] = append(steps[j], d)
		}
	}
	b.StopTimer()
	for j, name := range []string{"prepare", "mount", "unmount", "remove"} {
		b.ReportMetric(float64(median(steps[j]).Microseconds()), name+"-µs")
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
