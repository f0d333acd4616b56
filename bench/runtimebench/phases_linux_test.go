package main

import (
	"strings"
	"testing"
	"time"
)

// A shortened `perf script -F comm,pid,tid,time,event,trace` of one runc run.
const perfSample = `            runc 23091/23091 983.140396: sched:sched_process_exec: filename=/usr/sbin/runc pid=23091 old_pid=23091
            runc 23091/23091 983.151494: syscalls:sys_enter_mkdirat: dfd: 0xffffffffffffff9c, pathname: 0xc0000baa80, mode: 0x000001c9
             exe 23147/23147 983.152597: sched:sched_process_exec: filename=/proc/self/exe pid=23147 old_pid=23147
            runc 23147/23147 983.153974: sched:sched_process_exec: filename=/dev/fd/6 pid=23147 old_pid=23147
  runc:[1:CHILD] 23156/23156 983.166646: syscalls:sys_enter_unshare: unshare_flags: 0x6c020000
   runc:[2:INIT] 23157/23157 983.183465: syscalls:sys_enter_pivot_root: new_root: 0xc00014931e, put_old: 0xc000149320
   runc:[2:INIT] 23157/23166 983.185896: sched:sched_process_exit: comm=runc:[2:INIT] pid=23166 prio=120 group_dead=false
            true 23157/23157 983.186356: sched:sched_process_exec: filename=/bin/true pid=23157 old_pid=23157
            true 23157/23157 983.187046: sched:sched_process_exit: comm=true pid=23157 prio=120 group_dead=true
            runc 23091/23135 983.188394: sched:sched_process_exit: comm=runc pid=23135 prio=120 group_dead=false
            runc 23091/23091 983.188436: sched:sched_process_exit: comm=runc pid=23091 prio=120 group_dead=false
`

func TestFindMilestones(t *testing.T) {
	got := findMilestones(parsePerfScript(strings.NewReader(perfSample)), "/bin/true")
	want := map[string]float64{ // ms after the runtime's exec
		milestones[0]: 11.098,
		milestones[2]: 12.201,
		milestones[3]: 26.250,
		milestones[4]: 43.069,
		milestones[5]: 45.960,
		milestones[6]: 46.650,
		milestones[7]: 48.040,
	}
	for name, ms := range want {
		d, ok := got[name]
		if !ok {
			t.Errorf("milestone %q not found", name)
			continue
		}
		if diff := d - time.Duration(ms*float64(time.Millisecond)); diff < -time.Microsecond || diff > time.Microsecond {
			t.Errorf("milestone %q at %v, want %vms", name, d, ms)
		}
	}
	if _, ok := got[milestones[1]]; ok {
		t.Errorf("runc made no memfd_create, but a milestone for it was found")
	}
}
