package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Printer is a Reporter that writes progress to a terminal or a log.
//
// On a terminal (tty) it keeps one line per item, in the order items first
// appeared, and redraws them in place with ANSI cursor moves (at most every
// redrawInterval, and whenever an item changes status):
//
//	a1b2c3d4e5f6: Downloading [=====>                ]  1.2MB/4.8MB  3.1MB/s
//	0f1e2d3c4b5a: Download complete
//
// Otherwise it writes one plain line each time an item changes status,
// never one per byte. An item with an empty id is a message: printed once
// as a line of its own.
//
// Done (or Flush) draws the final state; call it before writing anything
// else to w.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	width int
	now   func() time.Time

	items []*item
	byID  map[string]*item
	drawn int // lines of items on screen (tty), below which the cursor sits
	last  time.Time
	dirty bool
}

type item struct {
	id, status     string
	current, total int64
	// rate over the current status: bytes and time when it began
	startBytes int64
	startTime  time.Time
}

// redrawInterval limits terminal redraws caused by byte counts.
const redrawInterval = 100 * time.Millisecond

// NewPrinter returns a Printer writing to w, redrawing in place when tty.
// The terminal width comes from w when it is a terminal, else 80 columns.
func NewPrinter(w io.Writer, tty bool) *Printer {
	width := 80
	if f, ok := w.(*os.File); ok && tty {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			width = cols
		}
	}
	return &Printer{w: w, tty: tty, width: width, now: time.Now, byID: map[string]*item{}}
}

// Update implements Reporter.
func (p *Printer) Update(id, status string, current, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if id == "" {
		p.message(status)
		return
	}
	it := p.byID[id]
	changed := false
	if it == nil {
		it = &item{id: id}
		p.byID[id] = it
		p.items = append(p.items, it)
		changed = true
	}
	if it.status != status {
		changed = true
		it.status = status
		it.startBytes, it.startTime = current, now
	}
	it.current, it.total = current, total
	p.dirty = true
	if !p.tty {
		if changed {
			fmt.Fprintln(p.w, p.plainLine(it))
		}
		return
	}
	if changed || now.Sub(p.last) >= redrawInterval {
		p.redraw(now)
	}
}

// Done draws the final state of every item.
func (p *Printer) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.dirty {
		p.redraw(p.now())
	}
}

// Flush is Done.
func (p *Printer) Flush() { p.Done() }

// message prints a line that is not an item, above the items on a tty.
func (p *Printer) message(s string) {
	if !p.tty {
		fmt.Fprintln(p.w, s)
		return
	}
	var b strings.Builder
	p.cursorUp(&b)
	b.WriteString("\x1b[2K" + p.fit(s) + "\n")
	p.drawn = 0
	p.lines(&b, p.now())
	io.WriteString(p.w, b.String())
}

func (p *Printer) cursorUp(b *strings.Builder) {
	if p.drawn > 0 {
		fmt.Fprintf(b, "\x1b[%dA", p.drawn)
	}
}

func (p *Printer) redraw(now time.Time) {
	var b strings.Builder
	p.cursorUp(&b)
	p.lines(&b, now)
	io.WriteString(p.w, b.String())
	p.last = now
	p.dirty = false
}

// lines writes every item's line, each cleared first.
func (p *Printer) lines(b *strings.Builder, now time.Time) {
	for _, it := range p.items {
		b.WriteString("\x1b[2K")
		b.WriteString(p.fit(p.ttyLine(it, now)))
		b.WriteByte('\n')
	}
	p.drawn = len(p.items)
}

// fit cuts s to the terminal width, so no line wraps (a wrapped line would
// break the cursor arithmetic).
func (p *Printer) fit(s string) string {
	if r := []rune(s); len(r) >= p.width {
		return string(r[:p.width-1])
	}
	return s
}

func (p *Printer) ttyLine(it *item, now time.Time) string {
	s := it.id + ": " + it.status
	if it.total <= 0 && it.current <= 0 || done(it.status) {
		return s
	}
	counts := " " + Size(it.current)
	if it.total > 0 {
		counts += "/" + Size(it.total)
	}
	if el := now.Sub(it.startTime); el >= 500*time.Millisecond && it.current > it.startBytes {
		rate := float64(it.current-it.startBytes) / el.Seconds()
		counts += "  " + Size(int64(rate)) + "/s"
	}
	// The bar gets what the line leaves of the terminal, up to 40 cells.
	if it.total > 0 {
		if w := min(40, p.width-1-len(s)-len(counts)-3); w >= 10 {
			s += " " + bar(it.current, it.total, w)
		}
	}
	return s + counts
}

func (p *Printer) plainLine(it *item) string {
	s := it.id + ": " + it.status
	if it.total > 0 && !done(it.status) {
		s += " (" + Size(it.total) + ")"
	}
	return s
}

// done tells statuses after which byte counts mean nothing to the reader.
func done(status string) bool {
	switch status {
	case "Waiting", "Preparing", "Verifying Checksum", "Download complete", "Pull complete",
		"Already exists", "Pushed", "Layer already exists":
		return true
	}
	return strings.HasPrefix(status, "Mounted from")
}

// bar renders [=====>     ] of width cells for current/total.
func bar(current, total int64, width int) string {
	n := int(float64(width) * float64(current) / float64(total))
	n = max(0, min(n, width))
	var s string
	switch {
	case n == width:
		s = strings.Repeat("=", width)
	case n > 0:
		s = strings.Repeat("=", n-1) + ">" + strings.Repeat(" ", width-n)
	default:
		s = ">" + strings.Repeat(" ", width-1)
	}
	return "[" + s + "]"
}

// Size renders a byte count as docker does: 1.23MB, 512B (decimal units).
func Size(n int64) string { return scaled(n, 1000, []string{"B", "kB", "MB", "GB", "TB"}) }

// BinarySize renders a byte count in binary units, as docker stats and
// info show memory: 1.5GiB, 512B.
func BinarySize(n uint64) string { return scaled(n, 1024, []string{"B", "KiB", "MiB", "GiB", "TiB"}) }

// scaled is n in the largest of units (each base times the one before)
// that keeps it at least 1, to 4 significant digits; bytes exactly.
func scaled[T int64 | uint64](n T, base float64, units []string) string {
	f := float64(n)
	i := 0
	for f >= base && i < len(units)-1 {
		f /= base
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d%s", n, units[0])
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
