package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// straceRun runs argv once under `strace -f -ttt -T`, writing the raw log
// to logPath.
func straceRun(argv []string, devnull, out *os.File, logPath string) error {
	strace, err := exec.LookPath("strace")
	if err != nil {
		return fmt.Errorf("-trace needs strace (apt-get install -y strace): %w", err)
	}
	cmd := exec.Command(strace, append([]string{"-f", "-ttt", "-T", "-s", "96", "--pidns-translation", "-o", logPath}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("strace %s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// traceEvent is one line of an strace -f -ttt -T log.
type traceEvent struct {
	pid     int
	at      float64 // seconds since the epoch
	name    string  // system call, or "+++" / "---" for exits and signals
	text    string  // the rest of the line
	dur     float64 // seconds spent in the call (-T), when known
	resumed bool
}

func parseStrace(r io.Reader) ([]traceEvent, error) {
	var evs []traceEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		pidStr, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		tsStr, rest, ok := strings.Cut(strings.TrimLeft(rest, " "), " ")
		if !ok {
			continue
		}
		pid, err1 := strconv.Atoi(pidStr)
		at, err2 := strconv.ParseFloat(tsStr, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		ev := traceEvent{pid: pid, at: at, text: rest}
		switch {
		case strings.HasPrefix(rest, "+++"), strings.HasPrefix(rest, "---"):
			ev.name = rest[:3]
		case strings.HasPrefix(rest, "<... "):
			ev.resumed = true
			ev.name, _, _ = strings.Cut(strings.TrimPrefix(rest, "<... "), " ")
		default:
			ev.name, _, _ = strings.Cut(rest, "(")
		}
		if i := strings.LastIndex(rest, " <"); i >= 0 && strings.HasSuffix(rest, ">") {
			ev.dur, _ = strconv.ParseFloat(rest[i+2:len(rest)-1], 64)
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// cloneResult returns the new task's id, as strace sees it, from a clone
// line: "= 5 /* 25002 in strace's PID NS */ <0.0001>" or "= 25002 <0.0001>".
func cloneResult(text string) int {
	i := strings.LastIndex(text, ") = ")
	if i < 0 {
		return 0
	}
	f := strings.Fields(text[i+4:])
	if len(f) >= 3 && f[1] == "/*" {
		if n, err := strconv.Atoi(f[2]); err == nil {
			return n
		}
	}
	if len(f) > 0 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 0
}

// milestoneCalls are the system calls that mark phases of starting a
// container.
var milestoneCalls = map[string]bool{
	"execve": true, "execveat": true, "clone": true, "clone3": true, "fork": true, "vfork": true,
	"unshare": true, "setns": true, "pivot_root": true, "chroot": true,
}

// threadIDs returns the ids of tasks created as threads (clone with
// CLONE_THREAD), whose starts and exits are not process milestones.
func threadIDs(evs []traceEvent) map[int]bool {
	threads := map[int]bool{}
	pendingThread := map[int]bool{} // pid -> an unfinished thread clone
	for _, ev := range evs {
		if ev.name != "clone" && ev.name != "clone3" {
			continue
		}
		isThread := strings.Contains(ev.text, "CLONE_THREAD")
		if ev.resumed {
			isThread = pendingThread[ev.pid]
			delete(pendingThread, ev.pid)
		} else if strings.HasSuffix(ev.text, "<unfinished ...>") {
			pendingThread[ev.pid] = isThread
			continue
		}
		if !isThread {
			continue
		}
		if tid := cloneResult(ev.text); tid > 0 {
			threads[tid] = true
		}
	}
	return threads
}

// summarizeTrace writes the phases of one traced run: when the runtime
// first created a process, when the container program was exec'd, when it
// exited and when the runtime exited, the system calls that took the most
// time in total, and a timeline of milestone calls.
func summarizeTrace(w io.Writer, evs []traceEvent, containerProg string) {
	if len(evs) == 0 {
		fmt.Fprintf(w, "    (empty trace)\n")
		return
	}
	t0 := evs[0].at
	rel := func(at float64) string { return fmt.Sprintf("%8.2f", (at-t0)*1000) }
	root := evs[0].pid
	var firstFork, progExec, progExit, rootExit float64
	progPid := 0
	mounts, mountTime := 0, 0.0
	perCall := map[string]float64{}
	calls := 0
	pids := map[int]bool{}
	threads := threadIDs(evs)
	var timeline []string
	for _, ev := range evs {
		pids[ev.pid] = true
		if ev.name != "+++" && ev.name != "---" {
			perCall[ev.name] += ev.dur
			if !ev.resumed {
				calls++
			}
		}
		if ev.resumed {
			continue
		}
		switch ev.name {
		case "clone", "clone3", "fork", "vfork":
			if firstFork == 0 && !strings.Contains(ev.text, "CLONE_THREAD") {
				firstFork = ev.at
			}
		case "execve":
			if progExec == 0 && strings.HasPrefix(ev.text, `execve("`+containerProg+`"`) {
				progExec, progPid = ev.at, ev.pid
			}
		case "mount":
			mounts++
			mountTime += ev.dur
		case "+++":
			if ev.pid == progPid && progExit == 0 {
				progExit = ev.at
			}
			if ev.pid == root {
				rootExit = ev.at
			}
		}
		if milestoneCalls[ev.name] || ev.name == "+++" {
			if strings.Contains(ev.text, "CLONE_THREAD") || (ev.name == "+++" && threads[ev.pid]) {
				continue // threads (of the Go runtime, say) are not milestones
			}
			line := ev.text
			if len(line) > 110 {
				line = line[:110] + "..."
			}
			timeline = append(timeline, fmt.Sprintf("    %s ms  pid %-7d %s", rel(ev.at), ev.pid, line))
		}
	}
	end := evs[len(evs)-1].at
	fmt.Fprintf(w, "    phases (ms since the runtime's execve):\n")
	phase := func(name string, at float64) {
		if at == 0 {
			fmt.Fprintf(w, "      %-38s %8s\n", name, "not seen")
			return
		}
		fmt.Fprintf(w, "      %-38s %s\n", name, rel(at))
	}
	phase("first child process", firstFork)
	phase("exec of "+containerProg+" (container running)", progExec)
	phase(containerProg+" exited", progExit)
	phase("runtime exited", rootExit)
	fmt.Fprintf(w, "      %-38s %8.2f\n", "last event", (end-t0)*1000)
	fmt.Fprintf(w, "    %d system calls in %d processes and %d threads; %d mounts taking %.2f ms\n", calls, len(pids)-len(threads), len(threads), mounts, mountTime*1000)
	type kv struct {
		name string
		sec  float64
	}
	var top []kv
	for n, s := range perCall {
		top = append(top, kv{n, s})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].sec > top[j].sec })
	var parts []string
	for i := 0; i < len(top) && i < 10; i++ {
		parts = append(parts, fmt.Sprintf("%s %.2f", top[i].name, top[i].sec*1000))
	}
	fmt.Fprintf(w, "    time inside system calls, summed over tasks, blocking waits included (ms): %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "    timeline of process, namespace and root changes:\n%s\n", strings.Join(timeline, "\n"))
}

// traceRuntimes runs each contender once under strace on bundle and prints
// a phase summary; raw logs go to dir.
func traceRuntimes(w io.Writer, dir, bundle string, devnull, log *os.File, newID func(*contender) string, cs ...*contender) error {
	fmt.Fprintf(w, "\nstrace -f -ttt -T of one run each (tracing slows every system call, so compare the shapes, not totals):\n")
	for _, c := range cs {
		logPath := fmt.Sprintf("%s/strace-%s.txt", dir, strings.ReplaceAll(c.label, " ", "_"))
		args := []string{c.path, "--root", c.state, "run", "--bundle", bundle, newID(c)}
		if err := log.Truncate(0); err != nil {
			return fmt.Errorf("truncate output log: %w", err)
		}
		start := time.Now()
		if err := straceRun(args, devnull, log, logPath); err != nil {
			return err
		}
		f, err := os.Open(logPath)
		if err != nil {
			return fmt.Errorf("open strace log: %w", err)
		}
		evs, err := parseStrace(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read strace log: %w", err)
		}
		fmt.Fprintf(w, "  %s (%.1f ms under strace; raw log %s):\n", c.label, ms(time.Since(start)), logPath)
		summarizeTrace(w, evs, "/bin/true")
	}
	return nil
}
