package runtime

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Phase tracing for performance work: with BERTH_RUNC_TRACE=1 in the
// environment, berth-runc and its init print CLOCK_MONOTONIC timestamps of
// each phase to stderr, comparable across the two processes.
var traceOn = os.Getenv("BERTH_RUNC_TRACE") == "1"

func tracef(format string, a ...any) {
	if !traceOn {
		return
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	fmt.Fprintf(os.Stderr, "trace %d.%06d [%d] %s\n", ts.Sec%1000, ts.Nsec/1000, os.Getpid(), fmt.Sprintf(format, a...))
}

// Trace records a phase (see tracef) for callers outside this package.
func Trace(phase string) { tracef("%s", phase) }
