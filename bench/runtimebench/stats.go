package main

import (
	"math"
	"sort"
	"time"
)

// summary describes one runtime's latency samples.
type summary struct {
	N                          int
	Min, P10, Median, P90, Max time.Duration
	Mean                       time.Duration
}

// summarize computes order statistics of samples; it does not modify samples.
func summarize(samples []time.Duration) summary {
	if len(samples) == 0 {
		return summary{}
	}
	s := append([]time.Duration(nil), samples...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var total time.Duration
	for _, d := range s {
		total += d
	}
	return summary{
		N:      len(s),
		Min:    s[0],
		P10:    quantile(s, 0.10),
		Median: quantile(s, 0.50),
		P90:    quantile(s, 0.90),
		Max:    s[len(s)-1],
		Mean:   total / time.Duration(len(s)),
	}
}

// quantile returns the q-quantile of sorted, interpolating linearly between
// the two nearest ranks (the usual "type 7" definition, so the median of an
// even number of samples is the mean of the middle two).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return sorted[lo] + time.Duration(math.Round(frac*float64(sorted[hi]-sorted[lo])))
}

// medianInt64 returns the median of values (0 when empty).
func medianInt64(values []int64) int64 {
	if len(values) == 0 {
		return 0
	}
	s := append([]int64(nil), values...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// maxInt64 returns the largest of values (0 when empty).
func maxInt64(values []int64) int64 {
	var m int64
	for _, v := range values {
		m = max(m, v)
	}
	return m
}

// targetRatio is issue 2's goal: berth-runc's median start latency at most
// half of runc's.
const targetRatio = 0.5

// verdict compares the ratio of medians with the target.
func verdict(ratio float64) string {
	if ratio > 0 && ratio <= targetRatio {
		return "PASS"
	}
	return "MISS"
}
