package runtime

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Phase tracing for performance work: with BERTH_RUNC_TRACE=1 in the
// environment, berth-runc and its init print CLOCK_MONOTONIC timestamps of
// each phase to stderr, comparable across the two processes; with
// BERTH_RUNC_TRACE=/abs/path they are appended to that file instead (for
// processes whose stderr is not yours: berth's supervisor callbacks).
var (
	traceEnv = os.Getenv("BERTH_RUNC_TRACE")
	traceOn  = traceEnv == "1" || len(traceEnv) > 1 && traceEnv[0] == '/'
)

func tracef(format string, a ...any) {
	if !traceOn {
		return
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	line := fmt.Sprintf("trace %d.%06d [%d] %s\n", ts.Sec%1000, ts.Nsec/1000, os.Getpid(), fmt.Sprintf(format, a...))
	if traceEnv != "1" {
		if f, err := os.OpenFile(traceEnv, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			f.WriteString(line)
			f.Close()
			return
		}
	}
	os.Stderr.WriteString(line)
}

// Trace records a phase (see tracef) for callers outside this package.
func Trace(phase string) { tracef("%s", phase) }
