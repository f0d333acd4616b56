package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestPrinter(tty bool) (*Printer, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	p := NewPrinter(&buf, tty)
	c := &fakeClock{t: time.Unix(1000, 0)}
	p.now = c.now
	return p, &buf, c
}

func TestPrinterPlain(t *testing.T) {
	p, buf, c := newTestPrinter(false)
	p.Update("", "Pulling from berth/busybox", 0, 0)
	p.Update("aaaaaaaaaaaa", "Waiting", 0, 2_000_000)
	p.Update("bbbbbbbbbbbb", "Waiting", 0, 500)
	for i := int64(0); i <= 2_000_000; i += 100_000 {
		c.t = c.t.Add(10 * time.Millisecond)
		p.Update("aaaaaaaaaaaa", "Downloading", i, 2_000_000)
	}
	p.Update("aaaaaaaaaaaa", "Download complete", 2_000_000, 2_000_000)
	p.Update("bbbbbbbbbbbb", "Already exists", 500, 500)
	p.Done()
	want := `Pulling from berth/busybox
aaaaaaaaaaaa: Waiting
bbbbbbbbbbbb: Waiting
aaaaaaaaaaaa: Downloading (2MB)
aaaaaaaaaaaa: Download complete
bbbbbbbbbbbb: Already exists
`
	if buf.String() != want {
		t.Fatalf("plain output:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestPrinterTTY(t *testing.T) {
	p, buf, c := newTestPrinter(true)
	p.Update("aaaaaaaaaaaa", "Waiting", 0, 2_000_000)
	p.Update("bbbbbbbbbbbb", "Waiting", 0, 500)
	buf.Reset()
	// Byte updates closer than the redraw interval draw nothing.
	c.t = c.t.Add(time.Second)
	p.Update("aaaaaaaaaaaa", "Downloading", 0, 2_000_000)
	buf.Reset()
	c.t = c.t.Add(10 * time.Millisecond)
	p.Update("aaaaaaaaaaaa", "Downloading", 10_000, 2_000_000)
	if buf.Len() != 0 {
		t.Fatalf("redrawn within the interval: %q", buf.String())
	}
	c.t = c.t.Add(time.Second)
	p.Update("aaaaaaaaaaaa", "Downloading", 1_000_000, 2_000_000)
	out := buf.String()
	// Cursor up over both lines, each line cleared and redrawn.
	if !strings.HasPrefix(out, "\x1b[2A\x1b[2K") || strings.Count(out, "\x1b[2K") != 2 || strings.Count(out, "\n") != 2 {
		t.Fatalf("redraw: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := "aaaaaaaaaaaa: Downloading [===============>                ] 1MB/2MB  990.1kB/s"
	if got := strings.TrimPrefix(strings.TrimPrefix(lines[0], "\x1b[2A"), "\x1b[2K"); got != want {
		t.Fatalf("line:\n%q\nwant\n%q", got, want)
	}
	if got := strings.TrimPrefix(lines[1], "\x1b[2K"); got != "bbbbbbbbbbbb: Waiting" {
		t.Fatalf("second line %q", got)
	}
	// A message goes above the items, which are redrawn below it.
	buf.Reset()
	p.Update("", "Digest: sha256:abc", 0, 0)
	if out := buf.String(); !strings.HasPrefix(out, "\x1b[2A\x1b[2KDigest: sha256:abc\n") || strings.Count(out, "\n") != 3 {
		t.Fatalf("message: %q", out)
	}
	// Status changes draw at once; Done draws pending byte counts.
	buf.Reset()
	p.Update("bbbbbbbbbbbb", "Already exists", 500, 500)
	if !strings.Contains(buf.String(), "bbbbbbbbbbbb: Already exists\n") {
		t.Fatalf("status change not drawn: %q", buf.String())
	}
	buf.Reset()
	p.Update("aaaaaaaaaaaa", "Downloading", 1_500_000, 2_000_000)
	p.Done()
	if !strings.Contains(buf.String(), "1.5MB/2MB") {
		t.Fatalf("Done did not draw the last count: %q", buf.String())
	}
}

func TestPrinterNarrowAndConcurrent(t *testing.T) {
	p, buf, _ := newTestPrinter(true)
	p.width = 30
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := int64(0); j < 100; j++ {
				p.Update(string(rune('a'+i))+"-layer", "Downloading", j, 100)
			}
		}(i)
	}
	wg.Wait()
	p.Done()
	for _, l := range strings.Split(buf.String(), "\n") {
		l = strings.TrimPrefix(l, "\x1b[2K")
		if i := strings.LastIndex(l, "\x1b[2K"); i >= 0 {
			l = l[i+4:]
		}
		if len([]rune(l)) >= 30 {
			t.Fatalf("line wider than the terminal: %q", l)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 1_234_567: "1.235MB", 5_000_000_000: "5GB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %s, want %s", n, got, want)
		}
	}
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 3 << 30: "3GiB", 1 << 62: "4.194e+06TiB"} {
		if got := BinarySize(n); got != want {
			t.Errorf("BinarySize(%d) = %s, want %s", n, got, want)
		}
	}
}
