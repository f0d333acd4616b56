package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPty opens a pseudo-terminal pair.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101})
	return m, s
}

// startOnPty starts berth with a terminal as its stdio, as a user's shell
// would.
func startOnPty(t *testing.T, args ...string) (*exec.Cmd, *os.File, *bufio.Reader) {
	t.Helper()
	m, s := openPty(t)
	cmd := exec.Command(berthBin, append([]string{"--root", root, "--run-dir", runDir}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	t.Cleanup(func() { m.Close(); cmd.Process.Kill(); cmd.Wait() })
	return cmd, m, bufio.NewReader(m)
}

// expect reads the terminal until want appears.
func expect(t *testing.T, r *bufio.Reader, m *os.File, want string) string {
	t.Helper()
	m.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got strings.Builder
	buf := make([]byte, 256)
	for !strings.Contains(got.String(), want) {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("waiting for %q on the terminal: %v; got %q", want, err, got.String())
		}
	}
	return got.String()
}

func TestRunInteractiveTerminal(t *testing.T) {
	cmd, m, r := startOnPty(t, "run", "-it", "--rm", "busybox:1.35", "sh")
	fmt.Fprintf(m, "stty size; tty; echo $TERM; exit 3\r")
	out := expect(t, r, m, "xterm")
	if !strings.Contains(out, "33 101") || !strings.Contains(out, "/dev/pts/") {
		t.Fatalf("terminal in the container: %q (want its size 33 101 and a pts)", out)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("run -it exit: %v, want 3", err)
	}
}

func TestDetachKeysAndAttach(t *testing.T) {
	cmd, m, r := startOnPty(t, "run", "-it", "--name", "berth-detach", "busybox:1.35", "sh")
	t.Cleanup(func() { berth(t, "rm", "-f", "berth-detach") })
	fmt.Fprintf(m, "echo before-$((1+1))\r")
	expect(t, r, m, "before-2\r\n")
	m.Write([]byte{16, 17}) // ctrl-p ctrl-q
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("detach: %v", err)
		}
	case <-time.After(10 * time.Second):
		m.SetReadDeadline(time.Now().Add(time.Second))
		rest, _ := io.ReadAll(r)
		t.Fatalf("ctrl-p ctrl-q did not detach; the terminal shows %q", rest)
	}
	if st := inspect(t, "berth-detach", "{{.State.Status}}"); st != "running" {
		t.Fatalf("after detach: %s, want running", st)
	}
	cmd2, m2, r2 := startOnPty(t, "attach", "berth-detach")
	fmt.Fprintf(m2, "echo attached-again; exit 5\r")
	expect(t, r2, m2, "attached-again")
	if err := cmd2.Wait(); err == nil || err.(*exec.ExitError).ExitCode() != 5 {
		t.Fatalf("attach exit: %v, want 5", err)
	}
}

func TestStdinInteractiveWithoutTerminal(t *testing.T) {
	r := berthIn(t, []byte("one\ntwo\n"), "run", "-i", "--rm", "busybox:1.35", "sh", "-c", "cat; echo done >&2")
	if r.out != "one\ntwo\n" || r.err != "done\n" {
		t.Fatalf("run -i: out %q err %q", r.out, r.err)
	}
}

func TestInitReapsAndForwards(t *testing.T) {
	out := must(t, "run", "--rm", "--init", "busybox:1.35", "sh", "-c", "(sleep 0.1 &); sleep 0.5; ps -o stat,comm | grep -c '^Z' || true")
	if strings.TrimSpace(out) != "0" {
		t.Fatalf("zombies with --init: %q", out)
	}
	id := runDetached(t, "--init", "busybox:1.35", "sleep", "300")
	time.Sleep(200 * time.Millisecond)
	if out := must(t, "exec", id, "cat", "/proc/1/cmdline"); !strings.HasPrefix(out, "/sbin/berth-init") {
		t.Fatalf("pid 1 is %q, want berth-init", out)
	}
	start := time.Now()
	must(t, "stop", "-t", "10", id)
	if time.Since(start) > 3*time.Second {
		t.Fatal("berth-init did not forward SIGTERM to its child")
	}
	if code := inspect(t, id, "{{.State.ExitCode}}"); code != "143" {
		t.Fatalf("exit code %s, want 143 (SIGTERM)", code)
	}
}

func TestHealthCheck(t *testing.T) {
	id := runDetached(t, "--health-cmd", "test -f /tmp/healthy", "--health-interval", "200ms", "--health-retries", "2", "busybox:1.35", "sh", "-c", "touch /tmp/healthy; sleep 300")
	eventually(t, 10*time.Second, "healthy", func() bool { return inspect(t, id, "{{.State.Health.Status}}") == "healthy" })
	if out := must(t, "ps", "--filter", "health=healthy", "-q"); !strings.Contains(out, id[:12]) {
		t.Fatalf("ps --filter health=healthy: %q", out)
	}
	must(t, "exec", id, "rm", "/tmp/healthy")
	eventually(t, 10*time.Second, "unhealthy", func() bool { return inspect(t, id, "{{.State.Health.Status}}") == "unhealthy" })
	var h struct {
		FailingStreak int
		Log           []struct{ ExitCode int }
	}
	if err := json.Unmarshal([]byte(inspect(t, id, "{{json .State.Health}}")), &h); err != nil || h.FailingStreak < 2 || len(h.Log) == 0 {
		t.Fatalf("health record: %+v %v", h, err)
	}
}

func TestLogRotation(t *testing.T) {
	id := runDetached(t, "--log-opt", "max-size=10k", "--log-opt", "max-file=3", "busybox:1.35", "sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; sleep 300")
	path := inspect(t, id, "{{.LogPath}}")
	eventually(t, 10*time.Second, "all lines logged", func() bool {
		return strings.TrimSpace(berth(t, "logs", "--tail", "1", id).out) == "line-2999-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	})
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("more than max-file=3 files kept")
	}
	for _, p := range []string{path, path + ".1"} {
		if fi, err := os.Stat(p); err != nil || fi.Size() > 12<<10 {
			t.Fatalf("%s: %v (size over max-size)", p, err)
		}
	}
	// Docker's json-file format, and logs reads across rotated files.
	data, _ := os.ReadFile(path + ".1")
	var entry struct{ Log, Stream, Time string }
	if err := json.Unmarshal([]byte(strings.SplitN(string(data), "\n", 2)[0]), &entry); err != nil || entry.Stream != "stdout" || !strings.HasPrefix(entry.Log, "line-") {
		t.Fatalf("log entry %+v: %v", entry, err)
	}
	out := must(t, "logs", "--tail", "1", id)
	if strings.TrimSpace(out) != "line-2999-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" {
		t.Fatalf("last line %q", out)
	}
}

func TestEventsAndStats(t *testing.T) {
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	id := strings.TrimSpace(must(t, "run", "-d", "--name", "berth-ev", "busybox:1.35", "sleep", "300"))
	t.Cleanup(func() { berth(t, "rm", "-f", id) })
	stats := must(t, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", id)
	if strings.TrimSpace(stats) != "berth-ev 1" {
		t.Fatalf("stats --no-stream: %q", stats)
	}
	must(t, "stop", "-t", "1", id)
	out := must(t, "events", "--since", since, "--until", time.Now().Add(time.Second).Format(time.RFC3339Nano), "--filter", "container=berth-ev", "--format", "{{.Action}}")
	for _, want := range []string{"create", "start", "die", "stop"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("events lack %q:\n%s", want, out)
		}
	}
}

func TestRestartAlwaysAndUserStop(t *testing.T) {
	id := runDetached(t, "--restart", "always", "busybox:1.35", "sh", "-c", "sleep 0.2; exit 1")
	eventually(t, 15*time.Second, "restarts", func() bool {
		var n int
		fmt.Sscan(inspect(t, id, "{{.RestartCount}}"), &n)
		return n >= 2
	})
	must(t, "stop", "-t", "1", id)
	time.Sleep(time.Second)
	if st := inspect(t, id, "{{.State.Status}}"); st != "exited" {
		t.Fatalf("a stopped restart=always container is %s", st)
	}
}

func TestResourceFlags(t *testing.T) {
	out := must(t, "run", "--rm", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "--ulimit", "nofile=512:1024", "--cap-drop", "ALL", "--cap-add", "CHOWN",
		"busybox:1.35", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; ulimit -n; ulimit -Hn; grep CapEff /proc/self/status")
	for _, want := range []string{"67108864", "512\n1024\n", "CapEff:\t0000000000000001"} {
		if !strings.Contains(out, want) {
			t.Errorf("resources: %q lacks %q", out, want)
		}
	}
	status, _ := os.ReadFile("/proc/self/status")
	var bnd string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "CapBnd:") {
			bnd = strings.TrimSpace(strings.TrimPrefix(l, "CapBnd:"))
		}
	}
	if r := berth(t, "run", "--rm", "--privileged", "busybox:1.35", "sh", "-c", "grep CapEff /proc/self/status; ls /dev | wc -l"); r.code != 0 || !strings.Contains(r.out, "CapEff:\t"+bnd) {
		t.Fatalf("--privileged: %q %q", r.out, r.err)
	}
	if r := berth(t, "run", "--rm", "--security-opt", "no-new-privileges", "busybox:1.35", "grep", "NoNewPrivs", "/proc/self/status"); !strings.Contains(r.out, "1") {
		t.Fatalf("no-new-privileges: %q", r.out)
	}
	if r := berth(t, "run", "--rm", "--security-opt", "seccomp=unconfined", "busybox:1.35", "grep", "Seccomp:", "/proc/self/status"); !strings.Contains(r.out, "0") {
		t.Fatalf("seccomp=unconfined: %q", r.out)
	}
	if r := berth(t, "run", "--rm", "busybox:1.35", "grep", "Seccomp:", "/proc/self/status"); !strings.Contains(r.out, "2") {
		t.Fatalf("default seccomp: %q", r.out)
	}
	if out := must(t, "run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--shm-size", "16m", "busybox:1.35", "sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; df -k /dev/shm | tail -1"); !strings.HasPrefix(out, "1\n") || !strings.Contains(out, "16384") {
		t.Fatalf("--sysctl/--shm-size: %q", out)
	}
	must(t, "run", "--rm", "--device", "/dev/null:/dev/berthnull", "busybox:1.35", "sh", "-c", "echo x > /dev/berthnull")
	// update changes a running container's limits.
	id := runDetached(t, "-m", "64m", "busybox:1.35", "sleep", "300")
	must(t, "update", "-m", "128m", "--memory-swap", "256m", id)
	if out := must(t, "exec", id, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null || true"); !strings.Contains(out, "134217728") {
		t.Fatalf("after update -m 128m: %q", out)
	}
}

func TestNamespaceModes(t *testing.T) {
	a := runDetached(t, "--name", "berth-ns-a", "busybox:1.35", "sleep", "300")
	time.Sleep(200 * time.Millisecond)
	if out := must(t, "run", "--rm", "--pid", "container:berth-ns-a", "busybox:1.35", "ps", "-o", "comm"); !strings.Contains(out, "sleep") {
		t.Fatalf("--pid container: does not see the other's processes: %q", out)
	}
	if out := must(t, "run", "--rm", "--pid", "host", "busybox:1.35", "sh", "-c", "ls /proc | grep -c '^[0-9]'"); atoi(out) < 20 {
		t.Fatalf("--pid host sees few processes: %q", out)
	}
	ipcA := must(t, "exec", a, "readlink", "/proc/1/ns/ipc")
	if out := must(t, "run", "--rm", "--ipc", "container:"+a, "busybox:1.35", "readlink", "/proc/self/ns/ipc"); out != ipcA {
		t.Fatalf("--ipc container: %q vs %q", out, ipcA)
	}
	hostUTS, _ := os.Readlink("/proc/self/ns/uts")
	if out := must(t, "run", "--rm", "--uts", "host", "busybox:1.35", "readlink", "/proc/self/ns/uts"); strings.TrimSpace(out) != hostUTS {
		t.Fatalf("--uts host: %q vs %q", out, hostUTS)
	}
	hostCg, _ := os.Readlink("/proc/self/ns/cgroup")
	if out := must(t, "run", "--rm", "--cgroupns", "private", "busybox:1.35", "readlink", "/proc/self/ns/cgroup"); strings.TrimSpace(out) == hostCg {
		t.Fatal("--cgroupns private shares the host's cgroup namespace")
	}
}

func TestRecoveryAfterLostProcesses(t *testing.T) {
	// A container whose processes vanish behind berth's back (a reboot,
	// or kill -9 of everything) shows as exited and is removable.
	id := runDetached(t, "busybox:1.35", "sleep", "300")
	pid := inspect(t, id, "{{.State.Pid}}")
	sup, err := os.ReadFile(filepath.Join(runDir, "containers", id, "supervisor.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var sp, cp int
	fmt.Sscan(string(sup), &sp)
	fmt.Sscan(pid, &cp)
	syscall.Kill(sp, syscall.SIGKILL)
	syscall.Kill(cp, syscall.SIGKILL)
	eventually(t, 5*time.Second, "exited", func() bool { return inspect(t, id, "{{.State.Status}}") == "exited" })
	must(t, "rm", id)
}

// After a reboot (every process gone), `berth system restore` — what the
// host runs at boot — brings back restart=always and unless-stopped
// containers, but not one a user stopped nor one without a policy.
func TestRestoreAfterReboot(t *testing.T) {
	always := runDetached(t, "--restart", "always", "busybox:1.35", "sleep", "300")
	unless := runDetached(t, "--restart", "unless-stopped", "busybox:1.35", "sleep", "300")
	stopped := runDetached(t, "--restart", "unless-stopped", "busybox:1.35", "sleep", "300")
	none := runDetached(t, "busybox:1.35", "sleep", "300")
	must(t, "stop", "-t", "0", stopped)
	for _, id := range []string{always, unless, none} {
		var sp, cp int
		sup, _ := os.ReadFile(filepath.Join(runDir, "containers", id, "supervisor.pid"))
		fmt.Sscan(string(sup), &sp)
		fmt.Sscan(inspect(t, id, "{{.State.Pid}}"), &cp)
		syscall.Kill(sp, syscall.SIGKILL)
		syscall.Kill(cp, syscall.SIGKILL)
	}
	for _, id := range []string{always, unless, none} {
		eventually(t, 5*time.Second, "exited after the 'reboot'", func() bool { return inspect(t, id, "{{.State.Status}}") == "exited" })
	}
	out := must(t, "system", "restore")
	for id, want := range map[string]string{always: "running", unless: "running", stopped: "exited", none: "exited"} {
		if got := inspect(t, id, "{{.State.Status}}"); got != want {
			t.Errorf("%s after restore: %s, want %s (restore printed %q)", id[:12], got, want, out)
		}
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(strings.TrimSpace(s), &n)
	return n
}

func TestMoreRunFlags(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=yes\nOVERRIDE=file\n"), 0o644)
	out := must(t, "run", "--rm", "--env-file", envFile, "-e", "OVERRIDE=flag", "--entrypoint", "/bin/sh", "--group-add", "65534",
		"--hostname", "berth-host", "--cpuset-cpus", "0", "--cpu-shares", "512", "--mount", "type=tmpfs,target=/mnt/t,tmpfs-size=1m",
		"--mount", "type=bind,source="+dir+",target=/mnt/h,readonly", "-w", "/mnt", "--stop-timeout", "3",
		"busybox:1.35", "-c", "echo $FROM_FILE $OVERRIDE; id -G; hostname; pwd; ls /mnt/h; touch /mnt/h/x 2>/dev/null || echo ro; df -k /mnt/t | tail -1; grep Cpus_allowed_list /proc/self/status")
	for _, want := range []string{"yes flag\n", "0 65534\n", "berth-host\n", "/mnt\n", "env\n", "ro\n", "1024", "Cpus_allowed_list:\t0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("run flags: %q lacks %q", out, want)
		}
	}
	id := strings.TrimSpace(must(t, "create", "--label", "a=b", "--stop-timeout", "3", "--restart", "on-failure:2", "busybox:1.35"))
	t.Cleanup(func() { berth(t, "rm", "-f", id) })
	if got := inspect(t, id, "{{.Config.Labels.a}} {{.Config.StopTimeout}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"); got != "b 3 on-failure 2" {
		t.Fatalf("create flags in inspect: %q", got)
	}
	// start -a -i attaches stdin and output to a created container.
	id2 := strings.TrimSpace(must(t, "create", "-i", "busybox:1.35", "sh", "-c", "read x; echo got-$x"))
	t.Cleanup(func() { berth(t, "rm", "-f", id2) })
	if r := berthIn(t, []byte("hello\n"), "start", "-a", "-i", id2); r.out != "got-hello\n" {
		t.Fatalf("start -a -i: %q %q", r.out, r.err)
	}
	// container prune removes stopped containers only.
	running := runDetached(t, "busybox:1.35", "sleep", "300")
	must(t, "container", "prune", "-f")
	if r := berth(t, "inspect", id); r.code == 0 {
		t.Fatal("container prune kept a stopped container")
	}
	if st := inspect(t, running, "{{.State.Status}}"); st != "running" {
		t.Fatalf("container prune touched a running container: %s", st)
	}
}

// TestWorkdirForUser: -w names a directory the image lacks; it is made
// and given to -u's user, as Docker does.
func TestWorkdirForUser(t *testing.T) {
	if out := must(t, "run", "--rm", "-u", "1000:1000", "-w", "/work/dir", "busybox:1.35", "sh", "-c", "stat -c %u:%g /work /work/dir; touch f && echo writable"); out != "0:0\n1000:1000\nwritable\n" {
		t.Fatalf("-u 1000 -w /work/dir: %q", out)
	}
}

// TestRestartRunsAgain: restart leaves the container running every time,
// however close its start comes to the end of the last run's supervisor.
func TestRestartRunsAgain(t *testing.T) {
	id := runDetached(t, "busybox:1.35", "sleep", "300")
	for i := 0; i < 15; i++ {
		must(t, "restart", "-t", "0", id)
		if st := inspect(t, id, "{{.State.Status}}"); st != "running" {
			t.Fatalf("after restart %d the container is %s", i+1, st)
		}
		must(t, "exec", id, "true")
	}
}
