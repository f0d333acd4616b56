package cgroups

import (
	"fmt"
	"regexp"
	"strconv"
)

// SharesToWeight converts v1 cpu.shares (2..262144) to v2 cpu.weight
// (1..10000) as runc does: 1 + ((shares-2)*9999)/262142. 0 stays 0 (unset);
// out-of-range shares are clamped as the v1 kernel clamps them.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// BlkioWeightToIOWeight converts a v1 blkio weight (10..1000) to a v2
// io.weight (1..10000) as runc does: 1 + (weight-10)*9999/990. 0 stays 0.
func BlkioWeightToIOWeight(weight uint64) uint64 {
	if weight == 0 {
		return 0
	}
	weight = min(max(weight, 10), 1000)
	return 1 + (weight-10)*9999/990
}

// SwapToV2 converts the spec's memory.swap (memory plus swap, as on v1) to
// the value of v2's memory.swap.max, which counts swap alone: "max" for -1,
// swap-limit otherwise. ok is false when swap is unset (0).
func SwapToV2(swap, limit int64) (value string, ok bool, err error) {
	switch {
	case swap == 0:
		return "", false, nil
	case swap == -1:
		return "max", true, nil
	case swap < -1:
		return "", false, fmt.Errorf("invalid memory+swap limit %d", swap)
	case limit == 0 || limit == -1:
		return "", false, fmt.Errorf("memory+swap limit %d needs a memory limit", swap)
	case swap < limit:
		return "", false, fmt.Errorf("memory+swap limit %d is lower than the memory limit %d", swap, limit)
	}
	return strconv.FormatInt(swap-limit, 10), true, nil
}

// CPUMax is the v2 cpu.max value for a CFS quota and period (both in µs):
// "max" for no quota; without a period the kernel keeps the current one.
func CPUMax(quota int64, period uint64) string {
	s := "max"
	if quota > 0 {
		s = strconv.FormatInt(quota, 10)
	}
	if period != 0 {
		s += " " + strconv.FormatUint(period, 10)
	}
	return s
}

// bytesV2 renders a byte limit for a v2 file: -1 (or any negative) is "max".
func bytesV2(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

var pageSizeRE = regexp.MustCompile(`^([1-9][0-9]*)(KB|MB|GB)$`)

// HugepageKB parses a hugepage size as the spec and the cgroup files write
// it ("2MB", "1GB", "64KB") into kibibytes.
func HugepageKB(size string) (uint64, error) {
	m := pageSizeRE.FindStringSubmatch(size)
	if m == nil {
		return 0, fmt.Errorf("hugepage size %q: want <number>KB, MB or GB", size)
	}
	n, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("hugepage size %q: %w", size, err)
	}
	switch m[2] {
	case "MB":
		n <<= 10
	case "GB":
		n <<= 20
	}
	return n, nil
}

// hugepageName renders a size in kibibytes as the cgroup files name it.
func hugepageName(kb uint64) string {
	switch {
	case kb >= 1<<20 && kb%(1<<20) == 0:
		return strconv.FormatUint(kb>>20, 10) + "GB"
	case kb >= 1<<10 && kb%(1<<10) == 0:
		return strconv.FormatUint(kb>>10, 10) + "MB"
	}
	return strconv.FormatUint(kb, 10) + "KB"
}
