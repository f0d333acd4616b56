package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// memSample is the outcome of one runtime invocation run under ptrace.
type memSample struct {
	// SelfRSS is the peak RSS (KiB) of the runtime process itself: the
	// largest VmHWM of its memory map, read when it exits and just before
	// every execve it makes.
	SelfRSS int64
	// DescRSS is the largest peak RSS (KiB) of any descendant: container
	// init and helper processes, each read just before every execve (so a
	// runtime re-exec'd as init is caught before it becomes the container's
	// program) and when it exits. Processes that share a memory map with
	// their creator (vfork children before exec) are not counted twice.
	DescRSS int64
	// Procs is the number of processes (thread groups) seen in the tree.
	Procs  int
	Status syscall.WaitStatus
}

// ptrace options: stop at every syscall (marked with 0x80), follow every new
// task, report exec and exit, and kill the tree if this program dies.
const traceOptions = syscall.PTRACE_O_TRACESYSGOOD | syscall.PTRACE_O_TRACEFORK |
	syscall.PTRACE_O_TRACEVFORK | syscall.PTRACE_O_TRACECLONE |
	syscall.PTRACE_O_TRACEEXEC | syscall.PTRACE_O_TRACEEXIT | ptraceOExitKill

const ptraceOExitKill = 0x100000 // PTRACE_O_EXITKILL

// kcmpVM is KCMP_VM from <linux/kcmp.h>: compare the tasks' memory maps.
const kcmpVM = 1

// tracer holds the state of one traced run. Only the OS thread that started
// the tracee may issue ptrace requests, so all methods except killAll run on
// that thread.
type tracer struct {
	root     int
	peaks    map[int]int64 // thread group id -> largest VmHWM seen (KiB)
	creator  map[int]int   // task id -> task that created it
	attached map[int]bool  // tasks whose initial stop has been seen

	mu   sync.Mutex
	live map[int]bool // tasks not yet reported dead
}

// tracedRun runs argv under ptrace and records the peak RSS of the runtime
// and of its descendants. The extra stops make it far slower than timedRun,
// so its wall time is not reported.
func tracedRun(argv []string, devnull, out *os.File, timeout time.Duration) (memSample, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	var res memSample
	attr := &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{devnull.Fd(), out.Fd(), out.Fd()},
		Sys:   &syscall.SysProcAttr{Ptrace: true},
	}
	pid, err := syscall.ForkExec(argv[0], argv, attr)
	if err != nil {
		return res, fmt.Errorf("start %s under ptrace: %w", argv[0], err)
	}
	t := &tracer{
		root:     pid,
		peaks:    map[int]int64{},
		creator:  map[int]int{},
		attached: map[int]bool{pid: true},
		live:     map[int]bool{pid: true},
	}
	watchdog := time.AfterFunc(timeout, t.killAll)
	defer watchdog.Stop()

	// The child stops with SIGTRAP after its execve.
	var ws syscall.WaitStatus
	if _, err := wait4Retry(pid, &ws, syscall.WALL, nil); err != nil {
		return res, fmt.Errorf("wait for traced %s: %w", argv[0], err)
	}
	if !ws.Stopped() {
		return res, fmt.Errorf("traced %s did not stop after exec (wait status %#x)", argv[0], uint32(ws))
	}
	if err := syscall.PtraceSetOptions(pid, traceOptions); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return res, fmt.Errorf("set ptrace options: %w", err)
	}
	if err := syscall.PtraceSyscall(pid, 0); err != nil {
		return res, fmt.Errorf("resume traced %s: %w", argv[0], err)
	}

	for {
		tid, err := wait4Retry(-1, &ws, syscall.WALL, nil)
		if errors.Is(err, syscall.ECHILD) {
			break // nothing left: neither children nor tracees
		}
		if err != nil {
			t.killAll()
			return res, fmt.Errorf("wait for tracees: %w", err)
		}
		if ws.Exited() || ws.Signaled() {
			t.mu.Lock()
			delete(t.live, tid)
			t.mu.Unlock()
			if tid == pid {
				res.Status = ws
			}
			continue
		}
		if !ws.Stopped() {
			continue
		}
		inject := 0
		sig := ws.StopSignal()
		switch {
		case sig == syscall.SIGTRAP|0x80: // syscall entry or exit
			if nr, err := syscallNumber(tid); err == nil && isExecve(nr) {
				t.sample(tid)
			}
		case sig == syscall.SIGTRAP && ws.TrapCause() > 0:
			switch ws.TrapCause() {
			case syscall.PTRACE_EVENT_FORK, syscall.PTRACE_EVENT_VFORK, syscall.PTRACE_EVENT_CLONE:
				if msg, err := syscall.PtraceGetEventMsg(tid); err == nil {
					t.creator[int(msg)] = tid
					t.mu.Lock()
					t.live[int(msg)] = true
					t.mu.Unlock()
				}
			case syscall.PTRACE_EVENT_EXIT:
				t.sample(tid)
			}
		case sig == syscall.SIGSTOP && !t.attached[tid]:
			// The stop every auto-attached task starts with; swallow it.
			t.attached[tid] = true
			t.mu.Lock()
			t.live[tid] = true
			t.mu.Unlock()
		default:
			inject = int(sig) // a real signal: deliver it
		}
		if err := syscall.PtraceSyscall(tid, inject); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.killAll()
			return res, fmt.Errorf("resume tracee %d: %w", tid, err)
		}
	}

	res.SelfRSS = t.peaks[pid]
	for tgid, kib := range t.peaks {
		if tgid != pid {
			res.DescRSS = max(res.DescRSS, kib)
		}
	}
	res.Procs = len(t.peaks)
	return res, nil
}

// sample records the current VmHWM of tid's memory map under its thread
// group, unless that map belongs to another process too (a vfork child
// before exec sees its parent's map).
func (t *tracer) sample(tid int) {
	st, err := readProcStatus(tid)
	if err != nil || st.hwm == 0 {
		return
	}
	if st.tgid == tid && tid != t.root {
		other := t.creator[tid]
		if other == 0 {
			other = st.ppid
		}
		if other > 0 && sameVM(tid, other) {
			return
		}
	}
	t.peaks[st.tgid] = max(t.peaks[st.tgid], st.hwm)
}

// killAll sends SIGKILL to every traced task; safe from any goroutine.
func (t *tracer) killAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tid := range t.live {
		_ = syscall.Kill(tid, syscall.SIGKILL)
	}
}

func wait4Retry(pid int, ws *syscall.WaitStatus, options int, ru *syscall.Rusage) (int, error) {
	for {
		wpid, err := syscall.Wait4(pid, ws, options, ru)
		if !errors.Is(err, syscall.EINTR) {
			return wpid, err
		}
	}
}

// sameVM reports whether tasks a and b share one memory map (kcmp(2)).
func sameVM(a, b int) bool {
	r, _, errno := syscall.Syscall6(sysKcmp, uintptr(a), uintptr(b), kcmpVM, 0, 0, 0)
	return errno == 0 && r == 0
}

type procStatus struct {
	tgid, ppid int
	hwm        int64 // KiB
}

// readProcStatus reads the thread group, parent and peak RSS of task tid.
func readProcStatus(tid int) (procStatus, error) {
	var st procStatus
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		switch key {
		case "Tgid":
			st.tgid, _ = strconv.Atoi(fields[0])
		case "PPid":
			st.ppid, _ = strconv.Atoi(fields[0])
		case "VmHWM":
			st.hwm, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read status of task %d: %w", tid, err)
	}
	return st, nil
}
