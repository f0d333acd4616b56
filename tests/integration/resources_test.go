package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func i64(v int64) *int64 { return &v }

// cgroupFile returns the host path of a cgroup file of process pid: in its
// v1 hierarchy holding controller, or in its v2 group.
func cgroupFile(t *testing.T, pid int, controller, name string) string {
	t.Helper()
	data := readFile(t, "/proc/"+itoa(pid)+"/cgroup")
	v2 := ""
	for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			v2 = f[2]
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", f[1], f[2], name)
			}
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil && v2 != "" {
		return filepath.Join("/sys/fs/cgroup", v2, name)
	}
	t.Fatalf("process %d has no %s cgroup:\n%s", pid, controller, data)
	return ""
}

// oomKills reads the OOM kill counter of the container's memory cgroup
// (the container uses cgroupsPath /berth/<id>).
func oomKills(t *testing.T, id string) string {
	t.Helper()
	file := "/sys/fs/cgroup/memory/berth/" + id + "/memory.oom_control"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		file = "/sys/fs/cgroup/berth/" + id + "/memory.events"
	}
	for _, line := range strings.Split(readFile(t, file), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return v
		}
	}
	t.Fatalf("%s has no oom_kill counter", file)
	return ""
}

type event struct {
	Type string          `json:"type"`
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
}

func parseEvents(t *testing.T, out string) []event {
	t.Helper()
	var evs []event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events line is not JSON: %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// A memory hog under a 32 MiB limit is OOM-killed: the container stops,
// `events` reports the kill as it happens, and the group's counter says
// so; a `true` under the same limit is not killed.
func TestOOMKillReported(t *testing.T) {
	limit := func(b *bundle, id string) {
		b.Spec.Root.Readonly = false
		b.Spec.Linux.CgroupsPath = "/berth/" + id
		b.Spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(32 << 20), Swap: i64(32 << 20)}
	}
	quiet := newBundle(t, "true")
	limit(quiet, "oom-true")
	quiet.create("oom-true")
	quiet.mustRunc("start", "oom-true")
	quiet.waitStatus("oom-true", "stopped")
	if n := oomKills(t, "oom-true"); n != "0" {
		t.Errorf("true under 32 MiB: %s OOM kills", n)
	}

	b := newBundle(t, "sh", "-c", `while [ ! -e /tmp/go ]; do sleep 0.05; done; x=$(head -c 100000000 /dev/zero | tr "\0" a); echo survived > /tmp/survived`)
	limit(b, "oom-hog")
	b.create("oom-hog")
	b.mustRunc("start", "oom-hog")

	out, err := os.Create(filepath.Join(b.Dir, "events.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ev := exec.Command(runcBin, "--root", b.Root, "events", "--interval", "100ms", "oom-hog")
	ev.Stdout, ev.Stderr = out, out
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	var evErr error
	done := make(chan struct{})
	go func() {
		evErr = ev.Wait()
		close(done)
	}()
	defer func() {
		ev.Process.Kill()
		<-done
	}()
	// The first stats line shows that events is watching.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readFile(t, out.Name()), `"type":"stats"`) {
		if time.Now().After(deadline) {
			t.Fatalf("events printed no stats: %s", readFile(t, out.Name()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "rootfs", "tmp", "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Killed once it holds 32 MiB: well within a minute even on an
	// emulated CPU.
	for deadline := time.Now().Add(60 * time.Second); b.state("oom-hog").Status != "stopped"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hog still runs after a minute; events:\n%s", readFile(t, out.Name()))
		}
	}
	select {
	case <-done:
		if evErr != nil {
			t.Errorf("events: %v\n%s", evErr, readFile(t, out.Name()))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("events did not end when the container stopped:\n%s", readFile(t, out.Name()))
	}
	if _, err := os.Stat(filepath.Join(b.Dir, "rootfs", "tmp", "survived")); err == nil {
		t.Fatal("the hog survived a 32 MiB limit")
	}
	ooms := 0
	for _, e := range parseEvents(t, readFile(t, out.Name())) {
		if e.Type == "oom" {
			ooms++
			if e.ID != "oom-hog" {
				t.Errorf("oom event for %q", e.ID)
			}
		}
	}
	if ooms == 0 {
		t.Errorf("events reported no OOM kill:\n%s", readFile(t, out.Name()))
	}
	if n := oomKills(t, "oom-hog"); n == "0" {
		t.Error("the group's oom_kill counter is 0")
	}
	// events on a stopped container fails, as runc's does.
	if r := b.runc("events", "--stats", "oom-hog"); r.Code == 0 || !strings.Contains(r.Stderr, "not running") {
		t.Errorf("events --stats on a stopped container: exit %d, %s", r.Code, r.Stderr)
	}
}

// update changes limits of a running container, keeps the ones it does
// not name, and the new limits hold inside the container.
func TestUpdate(t *testing.T) {
	b := startSleeper(t, "upd", nil)
	pid := b.state("upd").Pid
	b.mustRunc("update", "--pids-limit", "20", "upd")
	if got := strings.TrimSpace(readFile(t, cgroupFile(t, pid, "pids", "pids.max"))); got != "20" {
		t.Fatalf("pids.max after update --pids-limit 20: %s", got)
	}
	// JSON on stdin, runc's format; the pids limit stays.
	r := b.runcIn([]byte(`{"memory": {"limit": 67108864}, "cpu": {"shares": 512}}`), "update", "-r", "-", "upd")
	if r.Code != 0 {
		t.Fatalf("update -r -: exit %d: %s", r.Code, r.Stderr)
	}
	memFile, memWant, cpuFile, cpuWant := "memory.limit_in_bytes", "67108864", "cpu.shares", "512"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		memFile, cpuFile, cpuWant = "memory.max", "cpu.weight", "20"
	}
	for file, want := range map[string]string{
		cgroupFile(t, pid, "memory", memFile):  memWant,
		cgroupFile(t, pid, "cpu", cpuFile):     cpuWant,
		cgroupFile(t, pid, "pids", "pids.max"): "20",
	} {
		if got := strings.TrimSpace(readFile(t, file)); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
	// The limit holds: a burst of forks inside stops at 20 tasks.
	out := b.runc("exec", "upd", "sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all-forked")
	if strings.Contains(out.Stdout, "all-forked") || !strings.Contains(out.Stderr, "fork") {
		t.Errorf("40 forks under pids.max 20: stdout %q stderr %q", out.Stdout, out.Stderr)
	}
	if cur, _ := strconv.Atoi(strings.TrimSpace(readFile(t, cgroupFile(t, pid, "pids", "pids.current")))); cur > 20 || cur < 2 {
		t.Errorf("pids.current %d, want up to the limit of 20", cur)
	}
	// Bad input is refused with a message.
	if r := b.runc("update", "--memory", "lots", "upd"); r.Code == 0 || !strings.Contains(r.Stderr, "--memory") {
		t.Errorf("update --memory lots: exit %d, %s", r.Code, r.Stderr)
	}
	if r := b.runcIn([]byte(`{"memory": `), "update", "-r", "-", "upd"); r.Code == 0 || !strings.Contains(r.Stderr, "--resources") {
		t.Errorf("update with broken JSON: exit %d, %s", r.Code, r.Stderr)
	}
	// The saved config has the merged limits: another update keeps them.
	b.mustRunc("update", "--cpu-quota", "50000", "--cpu-period", "100000", "upd")
	if got := strings.TrimSpace(readFile(t, cgroupFile(t, pid, "pids", "pids.max"))); got != "20" {
		t.Errorf("pids.max after a cpu update: %s", got)
	}
}

// events --stats prints one JSON line with the container's usage.
func TestEventsStats(t *testing.T) {
	b := startSleeper(t, "evs", func(b *bundle) {
		b.Spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(64 << 20)}
		b.Spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(50)}
	})
	out := b.mustRunc("events", "--stats", "evs")
	evs := parseEvents(t, out)
	if len(evs) != 1 || evs[0].Type != "stats" || evs[0].ID != "evs" {
		t.Fatalf("events --stats printed %q, want one stats line for evs", out)
	}
	var data struct {
		CPU struct {
			Usage struct {
				Total uint64 `json:"total"`
			} `json:"usage"`
		} `json:"cpu"`
		Memory struct {
			Usage struct {
				Usage uint64 `json:"usage"`
				Limit uint64 `json:"limit"`
			} `json:"usage"`
		} `json:"memory"`
		Pids struct {
			Current uint64 `json:"current"`
			Limit   uint64 `json:"limit"`
		} `json:"pids"`
	}
	if err := json.Unmarshal(evs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Memory.Usage.Usage == 0 || data.Memory.Usage.Limit != 64<<20 {
		t.Errorf("memory %+v: want usage and a 64 MiB limit", data.Memory.Usage)
	}
	if data.Pids.Current != 1 || data.Pids.Limit != 50 {
		t.Errorf("pids %+v: want 1 of 50", data.Pids)
	}
	if data.CPU.Usage.Total == 0 {
		t.Errorf("no cpu usage: %s", out)
	}
}

// A resource the kernel refuses fails create, naming the field, and
// leaves nothing behind.
func TestCreateFailsOnBadResource(t *testing.T) {
	b := newBundle(t, "true")
	b.Spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(32 << 20)}
	b.write()
	r := b.runc("create", "--bundle", b.Dir, "badres")
	if r.Code == 0 {
		b.runc("delete", "--force", "badres")
		t.Fatal("create accepted memory+swap below the memory limit")
	}
	if !strings.Contains(r.Stderr, "linux.resources.memory") {
		t.Errorf("error %q does not name the resource", r.Stderr)
	}
	assertNothingLeft(t, b, "badres")
}

// A container's devices are limited by its cgroup: the default profile's
// deny-all plus the standard devices.
func TestDeviceCgroup(t *testing.T) {
	b := startSleeper(t, "devs", func(b *bundle) { b.Spec.Root.Readonly = false })
	// A node for the host's memory device (c 1:1) made inside: mknod is
	// allowed, opening it is not.
	out := b.runc("exec", "devs", "sh", "-c", `echo ok > /dev/null && head -c1 /dev/urandom | wc -c
mknod /tmp/berth-mem c 1 1 && echo mknod-ok
head -c1 /tmp/berth-mem >/dev/null 2>&1 && echo read-mem-ok || echo read-mem-denied`)
	got := strings.Fields(out.Stdout)
	if strings.Join(got, " ") != "1 mknod-ok read-mem-denied" {
		t.Errorf("device access inside: %q (stderr %q)", out.Stdout, out.Stderr)
	}
}
