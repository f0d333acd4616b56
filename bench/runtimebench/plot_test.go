package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPlotECDF(t *testing.T) {
	svg := plotECDF("start latency <a & b>", []series{
		{"berth-runc", "#1f77b4", msd(10, 12, 11, 13)},
		{"runc", "#d62728", append(msd(30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39), msd(400)...)},
	}, 15*time.Millisecond, "target")

	// It must be well-formed XML with one curve per runtime.
	dec := xml.NewDecoder(strings.NewReader(svg))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plot is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 2 {
		t.Errorf("plot has %d curves, want 2", polylines)
	}
	for _, want := range []string{
		"berth-runc: median 11.5 ms (n=4)",
		"runc: median 35 ms (n=21)",
		"target 15 ms",
		"1 slow run(s) beyond the axis", // 400 ms lies past 1.5 x the 95th percentile
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("plot lacks %q", want)
		}
	}
}

func TestNiceAxis(t *testing.T) {
	for _, c := range []struct{ in, end, step float64 }{
		{52.5, 60, 10}, {7.3, 8, 2}, {0, 1, 0.25}, {130, 150, 25},
	} {
		end, step := niceAxis(c.in)
		if end != c.end || step != c.step {
			t.Errorf("niceAxis(%v) = %v, %v; want %v, %v", c.in, end, step, c.end, c.step)
		}
	}
}
