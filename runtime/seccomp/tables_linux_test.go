package seccomp

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSyscallIndex(t *testing.T) {
	for i, n := range syscallNames {
		if j, ok := syscallIndex(n); !ok || j != i {
			t.Fatalf("syscallIndex(%q) = %d, %v; want %d", n, j, ok, i)
		}
		if i > 0 && syscallNames[i-1] >= n {
			t.Fatalf("syscallNames not sorted at %q", n)
		}
	}
	for _, n := range []string{"", "no_such_syscall", "READ", "read ", "mkdir\x00"} {
		if _, ok := syscallIndex(n); ok {
			t.Errorf("syscallIndex(%q) found a row", n)
		}
	}
	if headersVersion == "" {
		t.Error("no headers version")
	}
}

// TestTablesMatchHostHeaders compares the committed tables with the UAPI
// headers installed on this machine (Debian's linux-libc-dev, which the cgo
// build needs anyway): every syscall they define must have the same number
// in the tables (the tables may come from newer headers and have more).
func TestTablesMatchHostHeaders(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("compares with the x86 headers of an amd64 host; this is %s", runtime.GOARCH)
	}
	dir := "/usr/include/x86_64-linux-gnu/asm"
	define := regexp.MustCompile(`(?m)^#define __NR_([a-z0-9_]+)\s+(?:\(__X32_SYSCALL_BIT \+ )?(\d+)\)?\s*$`)
	for _, c := range []struct {
		file string
		arch specs.Arch
		add  uint32
	}{
		{"unistd_64.h", specs.ArchX86_64, 0},
		{"unistd_32.h", specs.ArchX86, 0},
		{"unistd_x32.h", specs.ArchX32, x32SyscallBit},
	} {
		b, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatalf("%v (install linux-libc-dev)", err)
		}
		m := define.FindAllSubmatch(b, -1)
		if len(m) < 300 {
			t.Fatalf("%s: only %d syscalls parsed", c.file, len(m))
		}
		for _, d := range m {
			n, _ := strconv.ParseUint(string(d[2]), 10, 32)
			got, ok := SyscallNumber(c.arch, string(d[1]))
			if !ok || got != uint32(n)+c.add {
				t.Errorf("%s: %s is %d in the header, %d (%v) in the tables", c.file, d[1], uint32(n)+c.add, got, ok)
			}
		}
	}
}
