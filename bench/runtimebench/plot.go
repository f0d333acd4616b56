package main

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
	"time"
)

// series is one runtime's latency samples for the plot.
type series struct {
	Label   string
	Color   string
	Samples []time.Duration
}

// plotECDF draws the empirical distribution functions of the series as an
// SVG: for each latency x, the fraction of runs that finished within x. A
// curve further left is faster; the horizontal gap between curves at 0.5 is
// the difference of medians. target, if positive, is drawn as a vertical line
// labelled targetNote.
func plotECDF(title string, all []series, target time.Duration, targetNote string) string {
	const (
		w, h                   = 760, 440
		left, right, top, bott = 70, 20, 40, 80
	)
	pw, ph := float64(w-left-right), float64(h-top-bott)

	var hi time.Duration
	var sorted [][]time.Duration
	for _, s := range all {
		c := append([]time.Duration(nil), s.Samples...)
		sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
		sorted = append(sorted, c)
		if len(c) > 0 {
			// Clip the axis at 1.5 x the 95th percentile so a few outliers
			// do not squash the rest; the caption says when it did.
			hi = max(hi, min(c[len(c)-1], quantile(c, 0.95)*3/2))
		}
	}
	hi = max(hi, target)
	xmax, step := niceAxis(ms(hi) * 1.05)
	x := func(d time.Duration) float64 { return left + math.Min(ms(d)/xmax, 1)*pw }
	y := func(f float64) float64 { return top + (1-f)*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))

	// Grid and ticks.
	for v := 0.0; v <= xmax+step/2; v += step {
		px := left + v/xmax*pw
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", px, top, px, h-bott)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px, h-bott+16, trimFloat(v))
	}
	for f := 0.0; f <= 1.0001; f += 0.25 {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(f), w-right, y(f))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.2f</text>`+"\n", left-6, y(f)+4, f)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#444"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">wall time of one "run" of /bin/true, fork to wait (ms)</text>`+"\n", left+pw/2, h-bott+36)
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">fraction of runs finished</text>`+"\n", top+ph/2)

	if target > 0 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#666" stroke-dasharray="6 4"/>`+"\n", x(target), top, x(target), h-bott)
		// Label in the empty top left of the line (top right when there is
		// no room): the curves reach the top only far to the right.
		tx, anchor := x(target)-4, "end"
		if x(target)-left < 240 {
			tx, anchor = x(target)+4, "start"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#666" text-anchor="%s">%s %s ms</text>`+"\n", tx, top+16, anchor, html.EscapeString(targetNote), trimFloat(round(ms(target), 2)))
	}

	clipped := 0
	for i, s := range all {
		c := sorted[i]
		if len(c) == 0 {
			continue
		}
		pts := []string{fmt.Sprintf("%.1f,%.1f", x(c[0]), y(0))}
		for j, d := range c {
			if ms(d) > xmax {
				clipped++
			}
			prev := float64(j) / float64(len(c))
			next := float64(j+1) / float64(len(c))
			pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", x(d), y(prev), x(d), y(next)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.Color, strings.Join(pts, " "))
		med := quantile(c, 0.5)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x(med), y(0.5), s.Color)
		lx := float64(left) + pw/2*float64(i) // legend row under the axis title
		ly := float64(h - 16)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", lx, ly-4, lx+25, ly-4, s.Color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s: median %s ms (n=%d)</text>`+"\n", lx+30, ly, html.EscapeString(s.Label), trimFloat(round(ms(med), 2)), len(c))
	}
	if clipped > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666" text-anchor="end">%d slow run(s) beyond the axis (clipped at %s ms)</text>`+"\n", w-right, top-6, clipped, trimFloat(xmax))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceAxis rounds v up to a readable axis end and returns it with a tick step.
func niceAxis(v float64) (end, step float64) {
	if v <= 0 {
		return 1, 0.25
	}
	raw := v / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
