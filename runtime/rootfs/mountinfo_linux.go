package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// mountInfo is one line of /proc/<pid>/mountinfo.
type mountInfo struct {
	ID, Parent   int
	Root         string // path of the mount's root inside its filesystem
	Mountpoint   string
	Options      string   // per-mount options (rw,nosuid,...)
	Optional     []string // optional fields: shared:N, master:N, ...
	FSType       string
	Source       string
	SuperOptions string
}

// shared reports whether the mount is in a shared peer group.
func (m mountInfo) shared() bool {
	for _, o := range m.Optional {
		if strings.HasPrefix(o, "shared:") {
			return true
		}
	}
	return false
}

func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountInfo(f)
}

// parseMountInfo parses the format described in proc(5).
func parseMountInfo(r io.Reader) ([]mountInfo, error) {
	var out []mountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		fields := strings.Split(line, " ")
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 10 || sep < 0 || len(fields) < sep+4 {
			return nil, fmt.Errorf("parse mountinfo line %q: too few fields", line)
		}
		id, err := strconv.Atoi(fields[0])
		if err != nil {
			return nil, fmt.Errorf("parse mountinfo line %q: %w", line, err)
		}
		parent, err := strconv.Atoi(fields[1])
		if err != nil {
			return nil, fmt.Errorf("parse mountinfo line %q: %w", line, err)
		}
		out = append(out, mountInfo{
			ID:           id,
			Parent:       parent,
			Root:         unescapeMountPath(fields[3]),
			Mountpoint:   unescapeMountPath(fields[4]),
			Options:      fields[5],
			Optional:     fields[6:sep],
			FSType:       fields[sep+1],
			Source:       unescapeMountPath(fields[sep+2]),
			SuperOptions: fields[sep+3],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMountPath undoes the kernel's octal escaping of space, tab,
// newline and backslash (\040, \011, \012, \134).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isUnder reports whether path is dir or inside it (both clean, absolute).
func isUnder(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// mountFor returns the mount that contains path: the last-mounted entry
// whose mount point is the longest prefix of path.
func mountFor(mounts []mountInfo, path string) (mountInfo, bool) {
	var best mountInfo
	found := false
	for _, m := range mounts {
		if !isUnder(path, m.Mountpoint) {
			continue
		}
		if !found || len(m.Mountpoint) >= len(best.Mountpoint) {
			best, found = m, true
		}
	}
	return best, found
}
