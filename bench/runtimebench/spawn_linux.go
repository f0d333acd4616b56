package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// becomeSubreaper makes this process adopt orphaned descendants, so nothing a
// runtime leaves running escapes to PID 1 unseen: reapOrphans finds it.
func becomeSubreaper() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// outcome is what one runtime invocation produced.
type outcome struct {
	Wall   time.Duration      // fork of the runtime to its reaping by wait4
	Status syscall.WaitStatus // the runtime's exit status
	// TreeRSS is ru_maxrss (KiB) from wait4 on the runtime: the largest peak
	// RSS of the runtime and of every descendant it (or one of its children)
	// reaped, since the kernel folds a reaped child's peak into its parent's
	// children peak. Orphans that this program reaped are folded in too.
	TreeRSS int64
	// CPU is user plus system time of the runtime and of the descendants
	// reaped inside its tree (and of orphans reaped here).
	CPU time.Duration
	// MinFlt counts minor page faults over the same processes.
	MinFlt  int64
	Orphans int // descendants that outlived the runtime and were reaped here
}

// success reports whether the runtime exited with status 0.
func (o outcome) success() bool { return o.Status.Exited() && o.Status.ExitStatus() == 0 }

func (o outcome) statusString() string {
	switch {
	case o.Status.Exited():
		return fmt.Sprintf("exit status %d", o.Status.ExitStatus())
	case o.Status.Signaled():
		return fmt.Sprintf("killed by %v", o.Status.Signal())
	default:
		return fmt.Sprintf("wait status %#x", uint32(o.Status))
	}
}

// timedRun starts argv with stdin from devnull and stdout and stderr into
// out, and measures the wall-clock time from fork to wait. The child is killed
// if it runs longer than timeout.
func timedRun(argv []string, devnull, out *os.File, timeout time.Duration) (outcome, error) {
	attr := &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{devnull.Fd(), out.Fd(), out.Fd()},
	}
	var o outcome
	start := time.Now()
	pid, err := syscall.ForkExec(argv[0], argv, attr)
	if err != nil {
		return o, fmt.Errorf("start %s: %w", argv[0], err)
	}
	watchdog := time.AfterFunc(timeout, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &o.Status, 0, &ru)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	o.Wall = time.Since(start)
	watchdog.Stop()
	if err != nil {
		return o, fmt.Errorf("wait for %s: %w", argv[0], err)
	}
	o.add(&ru)
	n, err := reapOrphans(&o)
	if err != nil {
		return o, err
	}
	o.Orphans = n
	return o, nil
}

// add folds one reaped process's resource usage into o.
func (o *outcome) add(ru *syscall.Rusage) {
	o.TreeRSS = max(o.TreeRSS, ru.Maxrss)
	o.CPU += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	o.MinFlt += ru.Minflt
}

// reapOrphans reaps every child of this process that has already exited
// (descendants of a runtime that were re-parented here) without blocking,
// folds their resource usage into o when o is not nil, and returns how many
// it reaped. Call it only while no child started through os/exec is alive,
// or it could steal that child's exit status.
func reapOrphans(o *outcome) (n int, err error) {
	n, _, err = reap(o)
	return n, err
}

// reap is reapOrphans that also reports whether children are still running.
func reap(o *outcome) (n int, alive bool, err error) {
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|syscall.WALL, &ru)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD):
			return n, false, nil
		case err != nil:
			return n, false, fmt.Errorf("reap orphans: %w", err)
		case pid == 0:
			return n, true, nil
		}
		n++
		if o != nil {
			o.add(&ru)
		}
	}
}
