package idmap

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Range is a run of host IDs: [Start, Start+Size).
type Range struct {
	Start, Size uint32
}

// End is the first ID after the range.
func (r Range) End() uint64 { return uint64(r.Start) + uint64(r.Size) }

// ReadSubIDs returns the ranges /etc/subuid or /etc/subgid (path)
// delegates to user, in file order. A missing file gives no ranges.
func ReadSubIDs(path, user string) ([]Range, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Range
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 || parts[0] != user {
			continue
		}
		start, err1 := strconv.ParseUint(parts[1], 10, 32)
		size, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 != nil || err2 != nil || size == 0 || start+size > 1<<32-1 {
			return nil, fmt.Errorf("%s line %d: %q is not NAME:START:COUNT", path, n, line)
		}
		out = append(out, Range{Start: uint32(start), Size: uint32(size)})
	}
	return out, sc.Err()
}

// Allocate returns the lowest Start of size free IDs inside one of pool
// that overlaps none of used.
func Allocate(pool, used []Range, size uint32) (uint32, error) {
	if size == 0 {
		return 0, errors.New("an id range of size 0")
	}
	best, found := uint64(0), false
	for _, p := range pool {
		start := uint64(p.Start)
		for moved := true; moved; {
			moved = false
			for _, u := range used {
				if start < u.End() && uint64(u.Start) < start+uint64(size) {
					start, moved = u.End(), true
				}
			}
		}
		if start+uint64(size) <= p.End() && (!found || start < best) {
			best, found = start, true
		}
	}
	if !found {
		return 0, fmt.Errorf("no free range of %d ids left", size)
	}
	return uint32(best), nil
}
