package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

func TestRunOutputAndExitCode(t *testing.T) {
	r := berth(t, "run", "--rm", "busybox:1.35", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.out != "out\n" || r.err != "err\n" {
		t.Fatalf("run: code %d, stdout %q, stderr %q; want 3, out, err (streams kept apart)", r.code, r.out, r.err)
	}
	if out := must(t, "run", "--rm", "busybox:1.35", "sh", "-c", "umask"); out != "0022\n" {
		t.Fatalf("umask in the container %q, want Docker's 0022", out)
	}
	r = berth(t, "run", "--rm", "layers:1")
	if r.code != 0 || r.out != "hello from layers image: changed\n" {
		t.Fatalf("layers:1 default command: code %d out %q err %q", r.code, r.out, r.err)
	}
	r = berth(t, "run", "--rm", "layers:1", "sh", "-c", "id; pwd; echo $GREETING")
	if want := "uid=1000(app) gid=1000(app)\n/home/app\nhi\n"; r.out != want {
		t.Fatalf("image config (User, WorkingDir, Env): got %q, want %q", r.out, want)
	}
}

func TestRunExitCodesAsDocker(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run", "--rm", "busybox:1.35", "/no/such/program"}, 127, "no/such/program"},
		{[]string{"run", "--rm", "busybox:1.35", "/etc/passwd"}, 126, "permission denied"},
		{[]string{"run", "--rm", "--no-such-flag", "busybox:1.35"}, 125, "no-such-flag"},
		{[]string{"run", "--rm", "no-such-image:7"}, 125, "no-such-image"},
		{[]string{"run", "--rm", "--cap-add", "CAP_BOGUS", "busybox:1.35", "true"}, 125, "CAP_BOGUS"},
		{[]string{"run", "--rm", "--restart", "sometimes", "busybox:1.35", "true"}, 125, "sometimes"},
		{[]string{"run", "--rm", "-m", "1k", "busybox:1.35", "true"}, 125, "memory"},
		{[]string{"run", "--rm", "--sysctl", "kernel.panic=1", "busybox:1.35", "true"}, 125, "kernel.panic"},
	} {
		before := strings.Count(must(t, "ps", "-aq"), "\n")
		r := berth(t, tc.args...)
		if r.code != tc.code || !strings.Contains(r.err, tc.msg) {
			t.Errorf("berth %s: exit %d stderr %q; want exit %d and an error naming %q", strings.Join(tc.args, " "), r.code, r.err, tc.code, tc.msg)
		}
		if after := strings.Count(must(t, "ps", "-aq"), "\n"); after != before {
			t.Errorf("berth %s left a container behind", strings.Join(tc.args, " "))
		}
	}
}

func TestDetachedSurvivesAndLogsFollow(t *testing.T) {
	id := runDetached(t, "busybox:1.35", "sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done")
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-hex id", id)
	}
	// The command that started it has exited; the container runs on.
	time.Sleep(300 * time.Millisecond)
	if st := inspect(t, id, "{{.State.Status}}"); st != "running" {
		t.Fatalf("state %q after run -d exited, want running", st)
	}
	cmd := exec.Command(berthBin, "--root", root, "--run-dir", runDir, "logs", "-f", id)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Lines written after logs -f started must arrive.
	buf := make([]byte, 0, 4096)
	deadline := time.Now().Add(5 * time.Second)
	var last int
	for time.Now().Before(deadline) {
		p := make([]byte, 1024)
		n, _ := out.Read(p)
		buf = append(buf, p[:n]...)
		lines := strings.Fields(string(buf))
		if len(lines) > 0 {
			last, _ = strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "line"))
		}
		if last >= 15 {
			break
		}
	}
	if last < 15 {
		t.Fatalf("logs -f stopped following: last line %d, output %q", last, buf)
	}
	// logs -f ends when the container stops.
	must(t, "stop", "-t", "1", id)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("logs -f did not end when the container stopped")
	}
	tail := must(t, "logs", "--tail", "2", id)
	if n := len(strings.Fields(tail)); n != 2 {
		t.Fatalf("logs --tail 2 printed %d lines: %q", n, tail)
	}
}

func TestStopSignalThenKill(t *testing.T) {
	// A process that ignores SIGTERM is killed after the timeout.
	id := runDetached(t, "busybox:1.35", "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	must(t, "stop", "-t", "1", id)
	if el := time.Since(start); el < time.Second || el > 6*time.Second {
		t.Fatalf("stop -t 1 of a container ignoring TERM took %s, want about 1 s", el)
	}
	if code := inspect(t, id, "{{.State.ExitCode}}"); code != "137" {
		t.Fatalf("exit code %s after the SIGKILL, want 137", code)
	}
	// A process that handles the stop signal exits with its own code.
	id = runDetached(t, "--stop-signal", "USR1", "busybox:1.35", "sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.1; done")
	time.Sleep(200 * time.Millisecond)
	start = time.Now()
	must(t, "stop", "-t", "10", id)
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("stop of a container handling its stop signal took %s", el)
	}
	if code := inspect(t, id, "{{.State.ExitCode}}"); code != "42" {
		t.Fatalf("exit code %s after USR1, want 42 (the trap's)", code)
	}
}

func TestRestartOnFailure(t *testing.T) {
	id := runDetached(t, "--restart", "on-failure:3", "busybox:1.35", "sh", "-c", "echo run; exit 7")
	eventually(t, 20*time.Second, "three restarts then exited", func() bool {
		return inspect(t, id, "{{.State.Status}} {{.RestartCount}}") == "exited 3"
	})
	time.Sleep(time.Second)
	if got := inspect(t, id, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"); got != "exited 3 7" {
		t.Fatalf("after on-failure:3: %q, want exited 3 7", got)
	}
	if n := strings.Count(must(t, "logs", id), "run"); n != 4 {
		t.Fatalf("the container ran %d times, want 4 (1 + 3 restarts)", n)
	}
}

func TestOOMKilled(t *testing.T) {
	r := berth(t, "run", "--name", "berth-oom", "-m", "32m", "--memory-swap", "32m", "busybox:1.35", "sh", "-c", "x=a; while true; do x=$x$x; done")
	t.Cleanup(func() { berth(t, "rm", "-f", "berth-oom") })
	if r.code != 137 {
		t.Fatalf("memory hog exited %d, want 137\n%s", r.code, r.err)
	}
	if got := inspect(t, "berth-oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"); got != "true 137" {
		t.Fatalf("inspect: %q, want OOMKilled true, exit 137", got)
	}
}

func TestExecInRunningContainer(t *testing.T) {
	id := runDetached(t, "--name", "berth-exec", "-e", "A=1", "busybox:1.35", "sleep", "300")
	if out := must(t, "exec", "berth-exec", "sh", "-c", "echo $A $B; pwd; id -u"); out != "1\n/\n0\n" {
		t.Fatalf("exec: %q", out)
	}
	if out := must(t, "exec", "-e", "B=2", "-w", "/tmp", "-u", "65534", id[:12], "sh", "-c", "echo $A $B; pwd; id -u"); out != "1 2\n/tmp\n65534\n" {
		t.Fatalf("exec -e -w -u: %q", out)
	}
	if r := berth(t, "exec", id, "sh", "-c", "exit 5"); r.code != 5 {
		t.Fatalf("exec exit code %d, want 5", r.code)
	}
	if r := berth(t, "exec", id, "/nope"); r.code != 127 {
		t.Fatalf("exec of a missing program: exit %d (%s), want 127", r.code, r.err)
	}
	if r := berthIn(t, []byte("piped\n"), "exec", "-i", id, "cat"); r.out != "piped\n" {
		t.Fatalf("exec -i: %q", r.out)
	}
	// The exec'd process is confined like the container: same pid namespace.
	if out := must(t, "exec", id, "ps", "-o", "pid,comm"); !strings.Contains(out, "1 sleep") {
		t.Fatalf("exec does not see the container's processes:\n%s", out)
	}
}

func TestNginxRedisImage(t *testing.T) {
	id := runDetached(t, "--name", "berth-web", "web:1")
	eventually(t, 10*time.Second, "nginx to serve", func() bool {
		r := berth(t, "exec", id, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3`)
		return strings.Contains(r.out, "<h1>served from a container</h1>")
	})
	must(t, "exec", "-d", id, "redis-server", "--daemonize", "no")
	eventually(t, 10*time.Second, "redis to answer", func() bool {
		return strings.TrimSpace(berth(t, "exec", id, "redis-cli", "ping").out) == "PONG"
	})
	if out := must(t, "top", id); !strings.Contains(out, "nginx") || !strings.Contains(out, "redis-server") {
		t.Fatalf("top does not list nginx and redis:\n%s", out)
	}
}

func TestPsInspectFilters(t *testing.T) {
	a := runDetached(t, "--name", "berth-ps-a", "-l", "tier=front", "busybox:1.35", "sleep", "300")
	b := strings.TrimSpace(must(t, "create", "--name", "berth-ps-b", "-l", "tier=back", "busybox:1.35", "true"))
	t.Cleanup(func() { berth(t, "rm", "-f", b) })
	if out := must(t, "ps", "-q"); !strings.Contains(out, a[:12]) || strings.Contains(out, b[:12]) {
		t.Fatalf("ps -q shows running only: %q", out)
	}
	if out := must(t, "ps", "-aq", "--filter", "label=tier=back"); strings.TrimSpace(out) != b[:12] {
		t.Fatalf("ps --filter label: %q", out)
	}
	if out := must(t, "ps", "-a", "--filter", "status=created", "--format", "{{.Names}} {{.State}}"); !strings.Contains(out, "berth-ps-b created") {
		t.Fatalf("ps --filter status --format: %q", out)
	}
	if out := must(t, "ps", "--no-trunc", "-q", "--filter", "name=berth-ps-a"); strings.TrimSpace(out) != a {
		t.Fatalf("ps --no-trunc: %q", out)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(must(t, "inspect", a)), &v); err != nil || len(v) != 1 {
		t.Fatalf("inspect is not a JSON array of one: %v", err)
	}
	for _, k := range []string{"Id", "State", "Config", "HostConfig", "Name", "Mounts", "NetworkSettings", "LogPath"} {
		if _, ok := v[0][k]; !ok {
			t.Errorf("inspect lacks Docker's %s", k)
		}
	}
	if v[0]["Name"] != "/berth-ps-a" {
		t.Errorf("inspect Name %v, want /berth-ps-a", v[0]["Name"])
	}
	if r := berth(t, "create", "--name", "berth-ps-a", "busybox:1.35"); r.code != 125 || !strings.Contains(r.err, "already in use") {
		t.Fatalf("a second container named berth-ps-a: exit %d %q", r.code, r.err)
	}
	must(t, "rename", "berth-ps-b", "berth-ps-c")
	if got := inspect(t, b, "{{.Name}}"); got != "/berth-ps-c" {
		t.Fatalf("after rename: %q", got)
	}
	if r := berth(t, "rm", "berth-ps-a"); r.code == 0 {
		t.Fatal("rm of a running container without -f succeeded")
	}
}

func TestPauseUnpause(t *testing.T) {
	id := runDetached(t, "busybox:1.35", "sh", "-c", "while true; do date +%s%N > /tmp/t; sleep 0.05; done")
	time.Sleep(200 * time.Millisecond)
	must(t, "pause", id)
	if st := inspect(t, id, "{{.State.Status}} {{.State.Paused}}"); st != "paused true" {
		t.Fatalf("after pause: %q", st)
	}
	must(t, "unpause", id)
	if st := inspect(t, id, "{{.State.Status}}"); st != "running" {
		t.Fatalf("after unpause: %q", st)
	}
}

func TestVolumes(t *testing.T) {
	must(t, "volume", "create", "berth-vol")
	t.Cleanup(func() { berth(t, "volume", "rm", "-f", "berth-vol") })
	must(t, "run", "--rm", "-v", "berth-vol:/data", "busybox:1.35", "sh", "-c", "echo kept > /data/f")
	if out := must(t, "run", "--rm", "-v", "berth-vol:/data:ro", "busybox:1.35", "cat", "/data/f"); out != "kept\n" {
		t.Fatalf("named volume content: %q", out)
	}
	if r := berth(t, "run", "--rm", "-v", "berth-vol:/data:ro", "busybox:1.35", "touch", "/data/g"); r.code == 0 {
		t.Fatal("wrote to a :ro volume")
	}
	// A new named volume is populated from the image's content at its mount point.
	t.Cleanup(func() { berth(t, "volume", "rm", "-f", "berth-vol-etc") })
	if out := must(t, "run", "--rm", "-v", "berth-vol-etc:/etc", "busybox:1.35", "cat", "/etc/passwd"); !strings.Contains(out, "root:") {
		t.Fatalf("new volume on /etc not populated from the image: %q", out)
	}
	// Bind mount, tmpfs, read-only root.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "host"), []byte("from host\n"), 0o644)
	if out := must(t, "run", "--rm", "--read-only", "--tmpfs", "/scratch", "-v", dir+":/h", "busybox:1.35", "sh", "-c", "cat /h/host; echo x > /scratch/y && cat /scratch/y; touch /z 2>/dev/null || echo ro"); out != "from host\nx\nro\n" {
		t.Fatalf("bind + tmpfs + read-only: %q", out)
	}
	if out := must(t, "volume", "ls", "-q"); !strings.Contains(out, "berth-vol\n") {
		t.Fatalf("volume ls: %q", out)
	}
	if r := berth(t, "volume", "rm", "berth-vol-nope"); r.code == 0 || !strings.Contains(r.err, "no such volume") {
		t.Fatalf("volume rm of a missing volume: %d %q", r.code, r.err)
	}
}

func TestCommitDiffExportCp(t *testing.T) {
	id := strings.TrimSpace(must(t, "create", "--name", "berth-cp", "busybox:1.35", "sh", "-c", "echo new > /new; rm /etc/group; echo changed >> /etc/passwd"))
	t.Cleanup(func() { berth(t, "rm", "-f", id) })
	must(t, "start", "-a", id)
	diff := must(t, "diff", id)
	for _, want := range []string{"A /new", "D /etc/group", "C /etc/passwd"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
	// cp works on a stopped container, both ways.
	dir := t.TempDir()
	must(t, "cp", id+":/new", filepath.Join(dir, "copied"))
	if data, _ := os.ReadFile(filepath.Join(dir, "copied")); string(data) != "new\n" {
		t.Fatalf("cp from container: %q", data)
	}
	os.WriteFile(filepath.Join(dir, "in"), []byte("into\n"), 0o644)
	must(t, "cp", filepath.Join(dir, "in"), id+":/tmp/")
	img := strings.TrimSpace(must(t, "commit", "-c", "CMD [\"cat\", \"/tmp/in\"]", id, "berth-committed:1"))
	t.Cleanup(func() { berth(t, "rmi", "-f", "berth-committed:1") })
	if !strings.HasPrefix(img, "sha256:") {
		t.Fatalf("commit printed %q", img)
	}
	if out := must(t, "run", "--rm", "berth-committed:1"); out != "into\n" {
		t.Fatalf("committed image's CMD output %q", out)
	}
	if out := must(t, "run", "--rm", "berth-committed:1", "sh", "-c", "cat /new; ls /etc/group 2>&1 || true"); !strings.HasPrefix(out, "new\n") || !strings.Contains(out, "No such file") {
		t.Fatalf("committed image content: %q", out)
	}
	exp := filepath.Join(dir, "export.tar")
	must(t, "export", "-o", exp, id)
	out, err := exec.Command("tar", "tf", exp).Output()
	if err != nil || !strings.Contains(string(out), "new\n") || !strings.Contains(string(out), "bin/busybox") {
		t.Fatalf("export: %v %s", err, out)
	}
}

// CVE-2018-15664 and friends: a symlink inside the container must never
// make cp read or write host files.
func TestCpSymlinkCannotEscape(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "host-secret")
	os.WriteFile(secret, []byte("host only\n"), 0o600)
	id := strings.TrimSpace(must(t, "create", "busybox:1.35", "sh", "-c", fmt.Sprintf("ln -s %s /leak; ln -s %s /dirleak", secret, dir)))
	t.Cleanup(func() { berth(t, "rm", "-f", id) })
	must(t, "start", "-a", id)
	// Reading through the link reads the container's view (nothing there).
	out := filepath.Join(t.TempDir(), "out")
	must(t, "cp", id+":/leak", out)
	if fi, err := os.Lstat(out); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("cp of a symlink should copy the link itself: %v", err)
	}
	r := berth(t, "cp", id+":/dirleak/host-secret", filepath.Join(t.TempDir(), "x"))
	if r.code == 0 {
		t.Fatal("cp followed a container symlink to a host file")
	}
	// Writing through a link lands inside the container, not on the host.
	src := filepath.Join(t.TempDir(), "host-secret")
	os.WriteFile(src, []byte("overwritten\n"), 0o644)
	berth(t, "cp", src, id+":/dirleak/")
	if data, _ := os.ReadFile(secret); string(data) != "host only\n" {
		t.Fatalf("cp into the container wrote the host file through a symlink: %q", data)
	}
}

func TestConcurrentContainersLeaveNothing(t *testing.T) {
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan string, n)
	sem := make(chan struct{}, 10)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("berth-many-%d", i)
			if r := berth(t, "run", "-d", "--name", name, "busybox:1.35", "sleep", "60"); r.code != 0 {
				errs <- fmt.Sprintf("run %s: %d %s", name, r.code, r.err)
				return
			}
			if r := berth(t, "rm", "-f", name); r.code != 0 {
				errs <- fmt.Sprintf("rm %s: %d %s", name, r.code, r.err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if out := must(t, "ps", "-aq", "--filter", "name=berth-many"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}
	if leaks := testutil.Added(map[string]bool{}, leakSnapshot()); len(leaks) > 0 {
		// Other tests' containers may run in parallel; only ours matter.
		for _, l := range leaks {
			if strings.Contains(l, "berth-many") {
				t.Errorf("left behind: %s", l)
			}
		}
	}
}

// kill -9 of the CLI or the supervisor at any moment must leave a
// container that shows its true state and that rm removes.
func TestKill9NeverLeavesUnremovable(t *testing.T) {
	for i, delay := range []time.Duration{0, 5 * time.Millisecond, 15 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond} {
		name := fmt.Sprintf("berth-k9-%d", i)
		cmd := exec.Command(berthBin, "--root", root, "--run-dir", runDir, "run", "-d", "--name", name, "busybox:1.35", "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		// Kill its supervisor too, when there is one.
		if pid, err := os.ReadFile(filepath.Join(runDir, "containers", idOf(t, name), "supervisor.pid")); err == nil {
			if p, err := strconv.Atoi(strings.Fields(string(pid))[0]); err == nil {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if id := idOf(t, name); id != "" {
			st := inspect(t, id, "{{.State.Status}}")
			if st != "created" && st != "running" && st != "exited" && st != "dead" {
				t.Errorf("%s after kill -9: state %q", name, st)
			}
			if r := berth(t, "rm", "-f", name); r.code != 0 {
				t.Errorf("rm -f %s after kill -9 (delay %s): %d %s", name, delay, r.code, r.err)
			}
		}
	}
	if out := must(t, "ps", "-aq", "--filter", "name=berth-k9"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}
}

func idOf(t *testing.T, name string) string {
	r := berth(t, "inspect", "--format", "{{.Id}}", name)
	if r.code != 0 {
		return ""
	}
	return strings.TrimSpace(r.out)
}

// TestKill9OfStartingClientOnly kills only the command that is starting a
// container (the container is created by the command, its init started by
// the supervisor): the supervisor must not keep a half-started container.
// Whatever the moment, the container ends up running or exited, its exit
// is recorded, and rm -f removes it with nothing left behind (TestMain
// checks mounts and cgroups).
func TestKill9OfStartingClientOnly(t *testing.T) {
	for i, delay := range []time.Duration{0, 3 * time.Millisecond, 8 * time.Millisecond, 15 * time.Millisecond, 25 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		for _, mode := range []string{"-d", "--rm"} {
			name := fmt.Sprintf("berth-k9c-%d%s", i, mode)
			args := []string{"--root", root, "--run-dir", runDir, "run", mode, "--name", name, "busybox:1.35", "sleep", "60"}
			cmd := exec.Command(berthBin, args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			id := idOf(t, name)
			if id == "" {
				continue // killed before the record was made
			}
			// The supervisor either runs the container or gives up on
			// the start and exits.
			eventually(t, 10*time.Second, name+" running or exited", func() bool {
				st := inspect(t, id, "{{.State.Status}}")
				return st == "running" || st == "exited" || st == "created" && !supervised(id)
			})
			if st := inspect(t, id, "{{.State.Status}}"); st == "running" {
				if sp := supervised(id); !sp {
					t.Errorf("%s (delay %s) is running without a supervisor", name, delay)
				}
			}
			if r := berth(t, "rm", "-f", name); r.code != 0 {
				t.Errorf("rm -f %s after kill -9 of the client (delay %s): %d %s", name, delay, r.code, r.err)
			}
		}
	}
	if out := must(t, "ps", "-aq", "--filter", "name=berth-k9c"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}
}

// supervised reports whether the container's supervisor runs.
func supervised(id string) bool {
	data, err := os.ReadFile(filepath.Join(runDir, "containers", id, "supervisor.pid"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + f[0] + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}
