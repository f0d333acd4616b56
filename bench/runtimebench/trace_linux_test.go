package main

import (
	"strings"
	"testing"
)

// A shortened strace -f -ttt -T --pidns-translation log.
const straceSample = `100 1700000000.000000 execve("/usr/sbin/runc", ["runc", "run"], 0x7ffd /* 3 vars */) = 0 <0.000300>
100 1700000000.001000 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x1}, 88) = 101 <0.000050>
100 1700000000.002000 clone(child_stack=NULL, flags=CLONE_VM|CLONE_VFORK|SIGCHLD <unfinished ...>
102 1700000000.003000 execve("/proc/self/exe", ["runc", "init"], 0xc0 /* 7 vars */ <unfinished ...>
100 1700000000.004000 <... clone resumed>) = 102 <0.002000>
102 1700000000.005000 <... execve resumed>) = 0 <0.002000>
102 1700000000.006000 unshare(CLONE_NEWNS|CLONE_NEWPID) = 0 <0.000600>
102 1700000000.006500 mount("proc", "/proc", "proc", 0, NULL) = 0 <0.000100>
102 1700000000.007000 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, child_tid=0x2} <unfinished ...>
102 1700000000.007100 <... clone3 resumed> => {parent_tid=[2]}, 88) = 2 /* 103 in strace's PID NS */ <0.000040>
103 1700000000.007500 +++ exited with 0 +++
102 1700000000.008000 pivot_root(".", ".") = 0 <0.000040>
102 1700000000.009000 execve("/bin/true", ["/bin/true"], 0xc0 /* 3 vars */) = 0 <0.000500>
102 1700000000.010000 +++ exited with 0 +++
101 1700000000.011000 +++ exited with 0 +++
100 1700000000.012000 +++ exited with 0 +++
`

func TestSummarizeTrace(t *testing.T) {
	evs, err := parseStrace(strings.NewReader(straceSample))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	summarizeTrace(&b, evs, "/bin/true")
	out := b.String()
	for _, want := range []string{
		"first child process                        2.00",
		"exec of /bin/true (container running)      9.00",
		"/bin/true exited                          10.00",
		"runtime exited                            12.00",
		"in 2 processes and 2 threads; 1 mounts",
		`pid 102     unshare(CLONE_NEWNS|CLONE_NEWPID)`,
		`pid 102     pivot_root(".", ".")`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// Threads (101 on the host, 103 inside the container's PID namespace)
	// are not process milestones.
	for _, unwanted := range []string{"pid 101", "pid 103", "CLONE_THREAD"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("summary shows thread event %q:\n%s", unwanted, out)
		}
	}
}
