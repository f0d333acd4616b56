package runtime

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseSignal parses a signal number (1 to 64), a name (KILL, term) or a
// SIG-prefixed name (SIGKILL), including SIGRTMIN+n and SIGRTMAX-n.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q: out of range", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	if strings.HasPrefix(name, "SIGRTMIN+") || strings.HasPrefix(name, "SIGRTMAX-") {
		n, err := strconv.Atoi(name[9:])
		if err == nil {
			if name[6] == 'I' {
				return unix.Signal(34 + n), nil
			}
			return unix.Signal(64 - n), nil
		}
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
