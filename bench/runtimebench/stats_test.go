package main

import (
	"testing"
	"time"
)

func msd(v ...float64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x * float64(time.Millisecond))
	}
	return out
}

func TestSummarize(t *testing.T) {
	// Out of order on purpose: summarize must sort a copy.
	in := msd(50, 10, 40, 20, 30, 100, 60, 70, 90, 80)
	s := summarize(in)
	want := summary{
		N:      10,
		Min:    10 * time.Millisecond,
		P10:    19 * time.Millisecond, // 10 + 0.9*(20-10)
		Median: 55 * time.Millisecond, // mean of 50 and 60
		P90:    91 * time.Millisecond, // 90 + 0.1*(100-90)
		Max:    100 * time.Millisecond,
		Mean:   55 * time.Millisecond,
	}
	if s != want {
		t.Errorf("summarize = %+v, want %+v", s, want)
	}
	if in[0] != 50*time.Millisecond {
		t.Errorf("summarize reordered its input")
	}
	if odd := summarize(msd(3, 1, 2)); odd.Median != 2*time.Millisecond {
		t.Errorf("median of 1,2,3 = %v, want 2ms", odd.Median)
	}
	if empty := summarize(nil); empty != (summary{}) {
		t.Errorf("summarize(nil) = %+v, want zero", empty)
	}
}

func TestMedianInt64(t *testing.T) {
	for _, c := range []struct {
		in   []int64
		want int64
	}{{nil, 0}, {[]int64{7}, 7}, {[]int64{9, 1, 5}, 5}, {[]int64{4, 1, 3, 2}, 2}} {
		if got := medianInt64(c.in); got != c.want {
			t.Errorf("medianInt64(%v) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := maxInt64([]int64{3, 9, 2}); got != 9 {
		t.Errorf("maxInt64 = %d, want 9", got)
	}
}

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		ratio float64
		want  string
	}{{0.3, "PASS"}, {0.5, "PASS"}, {0.51, "MISS"}, {1.2, "MISS"}, {0, "MISS"}} {
		if got := verdict(c.ratio); got != c.want {
			t.Errorf("verdict(%v) = %s, want %s", c.ratio, got, c.want)
		}
	}
}
