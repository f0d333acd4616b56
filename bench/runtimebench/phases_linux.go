package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// phaseEvents are the kernel tracepoints -phases records. They fire without
// stopping the traced processes, so a run under them takes about as long as
// an untraced one (unlike strace or perf trace, which stop or log every
// system call).
var phaseEvents = []string{
	"sched:sched_process_exec",
	"sched:sched_process_exit",
	"syscalls:sys_enter_mkdirat",
	"syscalls:sys_enter_memfd_create",
	"syscalls:sys_enter_unshare",
	"syscalls:sys_enter_pivot_root",
}

// milestones, in the order a container start reaches them.
var milestones = []string{
	"first mkdirat by the runtime (its state dir)",
	"memfd_create (copy of the runtime binary)",
	"first exec in a child (runtime re-exec'd as init)",
	"unshare (new namespaces)",
	"pivot_root into the rootfs",
	"exec of the container program",
	"container program exited",
	"runtime exited",
}

// tpEvent is one line of `perf script -F comm,pid,tid,time,event,trace`.
type tpEvent struct {
	at       time.Duration // since the first event
	pid, tid int
	name     string
	args     string
}

var perfLine = regexp.MustCompile(`^\s*(.*?)\s+(\d+)/(\d+)\s+(\d+\.\d+):\s+(\S+):\s*(.*)$`)

func parsePerfScript(r io.Reader) []tpEvent {
	var evs []tpEvent
	var t0 float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := perfLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		tid, _ := strconv.Atoi(m[3])
		sec, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			continue
		}
		if len(evs) == 0 {
			t0 = sec
		}
		evs = append(evs, tpEvent{
			at:  time.Duration((sec - t0) * float64(time.Second)),
			pid: pid, tid: tid, name: m[5], args: m[6],
		})
	}
	return evs
}

// findMilestones returns when each milestone was first reached in one run,
// relative to the runtime's own exec (the first event). The runtime is the
// process of the first event.
func findMilestones(evs []tpEvent, containerProg string) map[string]time.Duration {
	got := map[string]time.Duration{}
	if len(evs) == 0 {
		return got
	}
	root := evs[0].pid
	set := func(name string, at time.Duration) {
		if _, ok := got[name]; !ok {
			got[name] = at
		}
	}
	progPid := 0
	for _, ev := range evs {
		switch ev.name {
		case "syscalls:sys_enter_mkdirat":
			if ev.pid == root {
				set(milestones[0], ev.at)
			}
		case "syscalls:sys_enter_memfd_create":
			set(milestones[1], ev.at)
		case "sched:sched_process_exec":
			switch {
			case strings.Contains(ev.args, "filename="+containerProg+" "):
				set(milestones[5], ev.at)
				progPid = ev.pid
			case ev.pid != root:
				set(milestones[2], ev.at)
			}
		case "syscalls:sys_enter_unshare":
			set(milestones[3], ev.at)
		case "syscalls:sys_enter_pivot_root":
			set(milestones[4], ev.at)
		case "sched:sched_process_exit":
			if progPid != 0 && ev.tid == progPid {
				set(milestones[6], ev.at)
			}
			if ev.tid == root {
				got[milestones[7]] = ev.at
			}
		}
	}
	return got
}

// phaseRuns runs each contender runs times under `perf record` of
// phaseEvents and prints the median time at which each milestone was
// reached. Data files go to dir.
func phaseRuns(w io.Writer, runs int, dir, bundle string, devnull, log *os.File, newID func(*contender) string, cs ...*contender) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("-phases needs perf (apt-get install -y linux-perf): %w", err)
	}
	all := make([]map[string][]time.Duration, len(cs))
	for i := range cs {
		all[i] = map[string][]time.Duration{}
	}
	for r := range runs {
		for i, c := range cs {
			data := filepath.Join(dir, fmt.Sprintf("phases-%s-%d.data", c.tag, r))
			args := []string{"record", "-q", "-o", data, "-e", strings.Join(phaseEvents, ","), "--",
				c.path, "--root", c.state, "run", "--bundle", bundle, newID(c)}
			if err := log.Truncate(0); err != nil {
				return fmt.Errorf("truncate output log: %w", err)
			}
			cmd := exec.Command(perf, args...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, log, log
			if err := cmd.Run(); err != nil {
				out, _ := os.ReadFile(log.Name())
				return fmt.Errorf("perf record %s: %w; output:\n%s", c.label, err, indent(string(out)))
			}
			script := exec.Command(perf, "script", "-i", data, "-F", "comm,pid,tid,time,event,trace")
			var stderr bytes.Buffer
			script.Stderr = &stderr
			out, err := script.Output()
			if err != nil {
				return fmt.Errorf("perf script: %w: %s", err, strings.TrimSpace(stderr.String()))
			}
			for name, at := range findMilestones(parsePerfScript(bytes.NewReader(out)), "/bin/true") {
				all[i][name] = append(all[i][name], at)
			}
			_ = os.Remove(data)
		}
	}

	fmt.Fprintf(w, "\nphases: kernel tracepoints (perf record -e sched:sched_process_exec,...), %d runs each;\n", runs)
	fmt.Fprintf(w, "median ms since the runtime's exec when each milestone was first reached, and [the step from the previous one]\n")
	width := 0
	for _, m := range milestones {
		width = max(width, len(m))
	}
	fmt.Fprintf(w, "  %-*s", width, "milestone")
	for _, c := range cs {
		fmt.Fprintf(w, "  %16s", c.label)
	}
	fmt.Fprintln(w)
	prev := make([]time.Duration, len(cs))
	for _, m := range milestones {
		fmt.Fprintf(w, "  %-*s", width, m)
		for i := range cs {
			v := all[i][m]
			if len(v) == 0 {
				fmt.Fprintf(w, "  %16s", "-")
				continue
			}
			med := summarize(v).Median
			fmt.Fprintf(w, "  %16s", fmt.Sprintf("%.1f [%+.1f]", ms(med), ms(med-prev[i])))
			prev[i] = med
		}
		fmt.Fprintln(w)
	}
	return nil
}
