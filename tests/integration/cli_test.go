package integration

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/runtime/console"
)

func TestVersionSpecFeatures(t *testing.T) {
	b := newBundle(t, "true")
	out := b.mustRunc("--version")
	if !strings.Contains(out, "berth-runc version") || !strings.Contains(out, "spec: 1.") {
		t.Errorf("--version printed %q", out)
	}
	dir := t.TempDir()
	b.mustRunc("spec", "--bundle", dir)
	var s specs.Spec
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "config.json"))), &s); err != nil {
		t.Fatalf("spec wrote invalid JSON: %v", err)
	}
	if s.Root == nil || s.Root.Path != "rootfs" || s.Process == nil {
		t.Errorf("spec config: %+v", s)
	}
	if r := b.runc("spec", "--bundle", dir); r.Code == 0 {
		t.Errorf("spec overwrote an existing config.json")
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(b.mustRunc("features")), &f); err != nil {
		t.Fatalf("features is not JSON: %v", err)
	}
	if _, ok := f["linux"]; !ok {
		t.Errorf("features lacks linux: %v", f)
	}
	if r := b.runc("--systemd-cgroup", "list"); r.Code == 0 || !strings.Contains(r.Stderr, "not supported") {
		t.Errorf("--systemd-cgroup: %d %q", r.Code, r.Stderr)
	}
}

func TestListKillPs(t *testing.T) {
	b := startSleeper(t, "lk", func(b *bundle) {
		b.Spec.Process.Args = []string{"sh", "-c", "trap 'echo got-usr1 > /tmp/usr1' USR1; sleep 1000 & wait; sleep 1000 & wait"}
		b.Spec.Root.Readonly = false
	})
	out := b.mustRunc("list")
	if !strings.Contains(out, "ID") || !strings.Contains(out, "lk") || !strings.Contains(out, "running") {
		t.Errorf("list table: %q", out)
	}
	var l []map[string]any
	if err := json.Unmarshal([]byte(b.mustRunc("list", "--format", "json")), &l); err != nil || len(l) != 1 || l[0]["id"] != "lk" {
		t.Errorf("list json: %v %v", l, err)
	}
	// start returns once the program is released; it may still be
	// on its way to exec: wait for the shell and its sleep.
	var pids []int
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pids = nil
		if err := json.Unmarshal([]byte(b.mustRunc("ps", "--format", "json", "lk")), &pids); err != nil {
			t.Fatalf("ps json: %v", err)
		}
		if len(pids) == 2 && strings.Contains(b.mustRunc("ps", "lk"), "sleep 1000") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) != 2 {
		t.Errorf("ps json: %v, want the shell and its sleep", pids)
	}
	if out := b.mustRunc("ps", "lk"); !strings.Contains(out, "PID") || !strings.Contains(out, "sleep 1000") {
		t.Errorf("ps table: %q", out)
	}
	b.mustRunc("kill", "lk", "SIGUSR1")
	waitFile(t, filepath.Join(b.Dir, "rootfs", "tmp", "usr1"))
	if r := b.runc("kill", "lk", "NOSUCHSIG"); r.Code == 0 || !strings.Contains(r.Stderr, "NOSUCHSIG") {
		t.Errorf("kill with a bad signal: %d %q", r.Code, r.Stderr)
	}
	b.mustRunc("kill", "--all", "lk", "9")
	b.waitStatus("lk", "stopped")
	b.mustRunc("delete", "lk")
}

func TestJSONLogOnError(t *testing.T) {
	b := newBundle(t, "true")
	log := filepath.Join(b.Dir, "log.json")
	r := b.runc("--log", log, "--log-format", "json", "start", "missing")
	if r.Code == 0 {
		t.Fatal("start of a missing container succeeded")
	}
	var entry map[string]string
	line := strings.TrimSpace(readFile(t, log))
	if err := json.Unmarshal([]byte(strings.Split(line, "\n")[0]), &entry); err != nil {
		t.Fatalf("log is not JSON lines: %q", line)
	}
	if entry["level"] != "error" || !strings.Contains(entry["msg"], "does not exist") {
		t.Errorf("log entry %v", entry)
	}
}

func TestPreserveFds(t *testing.T) {
	b := newBundle(t, "sh", "-c", "echo through-fd3 >&3")
	b.write()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(runcBin, "--root", b.Root, "run", "--preserve-fds", "1", "--bundle", b.Dir, "pfd")
	cmd.ExtraFiles = []*os.File{pw}
	out, err := cmd.CombinedOutput()
	pw.Close()
	if err != nil {
		t.Fatalf("run: %v %s", err, out)
	}
	buf := make([]byte, 100)
	n, _ := pr.Read(buf)
	if strings.TrimSpace(string(buf[:n])) != "through-fd3" {
		t.Fatalf("fd 3 carried %q", buf[:n])
	}
}

// consoleListener listens on a console socket and returns what the pty
// master it receives carries, up to "done".
func consoleListener(t *testing.T) (string, <-chan string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		f, _ := conn.File()
		conn.Close()
		master, err := console.RecvFd(f)
		if err != nil {
			got <- "recv: " + err.Error()
			return
		}
		defer master.Close()
		var all []byte
		buf := make([]byte, 512)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !strings.Contains(string(all), "done") {
			n, err := master.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- string(all)
	}()
	return sock, got
}

func waitConsole(t *testing.T, got <-chan string, want ...string) {
	t.Helper()
	select {
	case out := <-got:
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("terminal output %q, want %q", out, w)
			}
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no terminal output")
	}
}

// TestConsoleSocket: with process.terminal the pty master arrives on the
// console socket, and the container's stdio is the pty slave.
func TestConsoleSocket(t *testing.T) {
	b := newBundle(t, "sh", "-c", "tty; echo done")
	b.Spec.Process.Terminal = true
	sock, got := consoleListener(t)
	b.create("tty", "--console-socket", sock)
	b.mustRunc("start", "tty")
	waitConsole(t, got, "/dev/pts/0", "done")
}

// TestExecTty: exec --tty gets its own pty in the container's devpts.
func TestExecTty(t *testing.T) {
	b := startSleeper(t, "exectty", nil)
	sock, got := consoleListener(t)
	b.mustRunc("exec", "--tty", "--console-socket", sock, "--detach", "exectty", "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty; echo done")
	waitConsole(t, got, "/dev/pts/", "stdin-is-tty", "done")
}

func TestPauseResume(t *testing.T) {
	b := startSleeper(t, "pz", func(b *bundle) {
		b.Spec.Process.Args = []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done"}
		b.Spec.Root.Readonly = false
	})
	count := filepath.Join(b.Dir, "rootfs", "tmp", "count")
	waitFile(t, count)
	b.mustRunc("pause", "pz")
	if st := b.state("pz").Status; st != "paused" {
		t.Fatalf("after pause: %s", st)
	}
	before := readFile(t, count)
	time.Sleep(300 * time.Millisecond)
	if after := readFile(t, count); after != before {
		t.Errorf("a paused container kept running: %q -> %q", before, after)
	}
	b.mustRunc("resume", "pz")
	if st := b.state("pz").Status; st != "running" {
		t.Fatalf("after resume: %s", st)
	}
	time.Sleep(300 * time.Millisecond)
	if after := readFile(t, count); after == before {
		t.Errorf("a resumed container does not run")
	}
	b.mustRunc("pause", "pz")
	b.mustRunc("delete", "--force", "pz") // a paused container can be force-deleted
}
