package main

import (
	"math"
	"testing"
)

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if got := median(xs); got != 3 {
		t.Fatalf("median = %v, want 3", got)
	}
	if got := median([]float64{1, 2, 3, 10}); got != 2.5 {
		t.Fatalf("median of even count = %v, want 2.5", got)
	}
	if got := quantile(xs, 0.9); math.Abs(got-4.6) > 1e-9 {
		t.Fatalf("p90 = %v, want 4.6", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Fatal("median of nothing is not NaN")
	}
	if xs[0] != 5 {
		t.Fatal("quantile sorted its input in place")
	}
	if !math.IsNaN(ratio(1, 0)) || ratio(1, 4) != 0.25 {
		t.Fatal("ratio")
	}
}

func TestSplitRule(t *testing.T) {
	got := splitRule(`-A DOCKER -i br0 -m comment --comment "a b \"c\"" -j RETURN`)
	want := []string{"-A", "DOCKER", "-i", "br0", "-m", "comment", "--comment", `a b "c"`, "-j", "RETURN"}
	if len(got) != len(want) {
		t.Fatalf("splitRule = %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("splitRule = %q, want %q", got, want)
		}
	}
}
