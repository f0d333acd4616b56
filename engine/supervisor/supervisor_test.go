package supervisor

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helper is testdata/suphelper built like berth: static, with the
// supervisor constructor linked in.
var helper string

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "berth-suptest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helper = filepath.Join(tmp, "berth-suphelper")
	build := exec.Command("go", "build", "-trimpath", "-tags", "netgo osusergo",
		"-ldflags", "-s -w -extldflags -static", "-o", helper, "./testdata/suphelper")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build suphelper: %v\n%s", err, out)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// newDir makes a run directory; its supervisor and container are killed and
// the directory removed when the test ends.
func newDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-sup-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The supervisor is a subreaper: everything the test started is
		// below it, or below the container if the supervisor is gone.
		var roots []int
		if pid, ok := Pid(dir); ok {
			roots = append(roots, pid)
		}
		if data, err := os.ReadFile(filepath.Join(dir, PidFile)); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
				if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); strings.HasPrefix(cwd, dir) {
					roots = append(roots, pid)
				}
			}
		}
		for _, pid := range roots {
			killTree(pid)
		}
		os.RemoveAll(dir)
	})
	return dir
}

// killTree kills pid and all its descendants (stopping them first, so none
// forks or is reparented meanwhile).
func killTree(pid int) {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var walk func(int)
	walk = func(p int) {
		syscall.Kill(p, syscall.SIGSTOP)
		for _, c := range children[p] {
			walk(c)
		}
		syscall.Kill(p, syscall.SIGKILL)
	}
	walk(pid)
}

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// container is a start callback that runs sh -c body as the "container",
// with the container stdio, reparented to the supervisor.
func container(body string) []string {
	return []string{helper, "bg", PidFile, "/bin/sh", "-c", body}
}

func spawnT(t *testing.T, dir string, cfg Config) int {
	t.Helper()
	pid, err := Spawn(dir, cfg, helper)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func waitExit(t *testing.T, dir string, d time.Duration) Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := Wait(ctx, dir); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, logFile))
		t.Fatalf("supervisor still running: %v\nsupervisor.log:\n%s", err, log)
	}
	exit, ok, err := ReadExit(dir)
	if err != nil || !ok {
		t.Fatalf("no exit record (ok=%v): %v", ok, err)
	}
	return exit
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type entry struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
	raw    string
}

func readLog(t *testing.T, path string) []entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var es []entry
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if line == "" {
			continue
		}
		if !strings.HasSuffix(line, "}\n") {
			t.Fatalf("log line not terminated: %q", line)
		}
		var e entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil || !strings.HasSuffix(e.Time, "Z") {
			t.Fatalf("log time %q: %v", e.Time, err)
		}
		e.raw = line
		es = append(es, e)
	}
	return es
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestLogExitAndCleanup(t *testing.T) {
	dir := newDir(t)
	logPath := filepath.Join(dir, "ctr-json.log")
	cleanup := script(t, dir, "cleanup.sh", `echo "$@" >> cleanup.args`)
	body := `printf 'out <&> "q" \\ tab\t bell\a cr\r\n'
printf 'err \303\251 bad \377 sep \342\200\250 end\n' >&2
printf 'no newline'
exit 3`
	spawnT(t, dir, Config{ID: "c1", LogPath: logPath, Start: container(body), Cleanup: []string{cleanup}})
	exit := waitExit(t, dir, 10*time.Second)
	if exit.Code != 3 || exit.StartFailed || exit.Restarting || exit.RestartCount != 0 {
		t.Fatalf("exit = %+v, want code 3", exit)
	}
	if exit.StartedAt.IsZero() || exit.FinishedAt.Before(exit.StartedAt) {
		t.Fatalf("exit times: %+v", exit)
	}
	if got := lines(t, filepath.Join(dir, "cleanup.args")); len(got) != 1 || got[0] != "3" {
		t.Fatalf("cleanup args = %q, want [3]", got)
	}
	var out, errs []entry
	for _, e := range readLog(t, logPath) {
		switch e.Stream {
		case "stdout":
			out = append(out, e)
		case "stderr":
			errs = append(errs, e)
		default:
			t.Fatalf("stream %q", e.Stream)
		}
	}
	if len(out) != 2 || len(errs) != 1 {
		t.Fatalf("stdout entries %d, stderr %d: %+v %+v", len(out), len(errs), out, errs)
	}
	// Docker's escaping: HTML characters and control characters as \u00XX,
	// \n and \r short, invalid UTF-8 as \ufffd, U+2028 escaped.
	wantOut := `{"log":"out \u003c\u0026\u003e \"q\" \\ tab\u0009 bell\u0007 cr\r\n","stream":"stdout","time":`
	if !strings.HasPrefix(out[0].raw, wantOut) {
		t.Errorf("stdout line\n got %s\nwant %s...", out[0].raw, wantOut)
	}
	wantErr := `{"log":"err é bad \ufffd sep \u2028 end\n","stream":"stderr","time":`
	if !strings.HasPrefix(errs[0].raw, wantErr) {
		t.Errorf("stderr line\n got %s\nwant %s...", errs[0].raw, wantErr)
	}
	if out[1].Log != "no newline" {
		t.Errorf("last partial line = %q", out[1].Log)
	}
	// A clean exit leaves no sockets and no pid file behind.
	for _, name := range []string{attachSock, ctlSock, pidFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", name, err)
		}
	}
}

func TestLongLinesSplitAt16K(t *testing.T) {
	dir := newDir(t)
	logPath := filepath.Join(dir, "ctr-json.log")
	spawnT(t, dir, Config{LogPath: logPath, Start: container(`head -c 40000 /dev/zero | tr '\0' a; echo; echo short`)})
	waitExit(t, dir, 10*time.Second)
	es := readLog(t, logPath)
	var sizes []int
	var all strings.Builder
	for _, e := range es {
		sizes = append(sizes, len(e.Log))
		all.WriteString(e.Log)
	}
	if fmt.Sprint(sizes) != "[16384 16384 7233 6]" {
		t.Fatalf("entry sizes %v, want [16384 16384 7233 6]", sizes)
	}
	if all.String() != strings.Repeat("a", 40000)+"\nshort\n" {
		t.Fatal("log content differs from the output")
	}
}

func TestLogRotation(t *testing.T) {
	dir := newDir(t)
	logPath := filepath.Join(dir, "ctr-json.log")
	spawnT(t, dir, Config{LogPath: logPath, LogMaxSize: 2000, LogMaxFile: 3,
		Start: container(`i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); done`)})
	waitExit(t, dir, 10*time.Second)
	if _, err := os.Stat(logPath + ".3"); !os.IsNotExist(err) {
		t.Fatalf("%s.3 exists with max-file 3", logPath)
	}
	var got []string
	for _, name := range []string{logPath + ".2", logPath + ".1", logPath} {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		// Docker rotates before a write once the file holds max-size:
		// a full file exceeds it by less than one entry.
		if name != logPath && (st.Size() < 2000 || st.Size() > 2100) {
			t.Errorf("%s: %d bytes, want max-size 2000 plus at most one entry", name, st.Size())
		}
		for _, e := range readLog(t, name) {
			got = append(got, strings.TrimSuffix(e.Log, "\n"))
		}
	}
	if len(got) == 0 || got[len(got)-1] != "line 299" {
		t.Fatalf("last entry %q", got)
	}
	first, _ := strconv.Atoi(strings.TrimPrefix(got[0], "line "))
	for i, l := range got {
		if l != fmt.Sprintf("line %d", first+i) {
			t.Fatalf("entry %d = %q: entries lost or reordered across rotation", i, l)
		}
	}
}

func TestAttachWaitsAndStdinOnce(t *testing.T) {
	dir := newDir(t)
	logPath := filepath.Join(dir, "ctr-json.log")
	spawnT(t, dir, Config{LogPath: logPath, OpenStdin: true, StdinOnce: true, WaitAttach: true,
		Start: container(`echo started; cat; echo done >&2; exit 5`)})

	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, PidFile)); !os.IsNotExist(err) {
		t.Fatal("container started before the first attach")
	}
	st, err := GetStatus(dir)
	if err != nil || st.State != "created" {
		t.Fatalf("status %+v, %v; want created", st, err)
	}

	a, err := Attach(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// A second client, output only, gets the same output.
	b, err := Attach(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Tty() {
		t.Fatal("tty stream without a terminal")
	}
	var bout, berr bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Copy(&bout, &berr) }()

	if _, err := a.Write([]byte("hello\nworld\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if err := a.Copy(&out, &errs); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if out.String() != "started\nhello\nworld\n" || errs.String() != "done\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errs.String())
	}
	if bout.String() != out.String() || berr.String() != errs.String() {
		t.Fatalf("second client got stdout %q stderr %q", bout.String(), berr.String())
	}
	// The exit is recorded before the stream ends.
	exit, ok, err := ReadExit(dir)
	if err != nil || !ok || exit.Code != 5 {
		t.Fatalf("exit after EOF: %+v %v %v", exit, ok, err)
	}
	waitExit(t, dir, 10*time.Second)
}

func TestAttachFraming(t *testing.T) {
	dir := newDir(t)
	spawnT(t, dir, Config{WaitAttach: true, Start: container(`printf abc; printf XY >&2`)})
	c, err := net.Dial("unix", filepath.Join(dir, attachSock))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{2 | 4}); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // the supervisor exits once its clients are gone
	if len(data) == 0 || data[0] != 'M' {
		t.Fatalf("answer %q, want M", data)
	}
	data = data[1:]
	got := map[byte]string{}
	for len(data) > 0 {
		if len(data) < 8 || data[1] != 0 || data[2] != 0 || data[3] != 0 {
			t.Fatalf("bad stdcopy header in %q", data)
		}
		n := binary.BigEndian.Uint32(data[4:8])
		got[data[0]] += string(data[8 : 8+n])
		data = data[8+n:]
	}
	if got[1] != "abc" || got[2] != "XY" || len(got) != 2 {
		t.Fatalf("frames %q", got)
	}
	waitExit(t, dir, 10*time.Second)
}

func TestTerminal(t *testing.T) {
	dir := newDir(t)
	logPath := filepath.Join(dir, "ctr-json.log")
	start := []string{helper, "pty-run", filepath.Join(dir, ConsoleSocket), PidFile,
		"/bin/sh", "-c", `read x; stty size; echo "got:$x"; echo oops >&2; exit 7`}
	spawnT(t, dir, Config{LogPath: logPath, Tty: true, OpenStdin: true, WaitAttach: true, Start: start})
	a, err := Attach(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.Tty() {
		t.Fatal("attach stream is not raw with a terminal")
	}
	if err := Resize(dir, 30, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("hi\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := a.Copy(&out, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"30 100", "got:hi", "oops"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("terminal output %q lacks %q", out.String(), want)
		}
	}
	exit := waitExit(t, dir, 10*time.Second)
	if exit.Code != 7 {
		t.Fatalf("exit %+v", exit)
	}
	var logged strings.Builder
	for _, e := range readLog(t, logPath) {
		if e.Stream != "stdout" {
			t.Errorf("terminal log entry on stream %q", e.Stream)
		}
		logged.WriteString(e.Log)
	}
	if !strings.Contains(logged.String(), "got:hi\r\n") {
		t.Errorf("log %q lacks the terminal output", logged.String())
	}
}

func TestResizeWithoutTerminal(t *testing.T) {
	dir := newDir(t)
	spawnT(t, dir, Config{Start: container(`exec sleep 30`)})
	waitFor(t, "running", 5*time.Second, func() bool { s, _ := GetStatus(dir); return s.State == "running" })
	err := Resize(dir, 10, 10)
	if err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Fatalf("resize without a terminal: %v", err)
	}
	s, err := GetStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, PidFile))
	if strconv.Itoa(s.Pid) != strings.TrimSpace(string(data)) || s.Health != "none" {
		t.Fatalf("status %+v, pid file %q", s, data)
	}
}

func readTimes(t *testing.T, path string) []time.Time {
	var ts []time.Time
	for _, l := range lines(t, path) {
		ns, err := strconv.ParseInt(strings.Fields(l)[0], 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", path, l)
		}
		ts = append(ts, time.Unix(0, ns))
	}
	return ts
}

func TestRestartOnFailureBacksOff(t *testing.T) {
	dir := newDir(t)
	cleanup := script(t, dir, "cleanup.sh", `echo "$@" >> cleanup.args`)
	spawnT(t, dir, Config{Restart: RestartOnFailure, RestartMaxRetries: 3, Cleanup: []string{cleanup},
		Start: container(`date +%s%N >> runs; exit 1`)})
	exit := waitExit(t, dir, 20*time.Second)
	if exit.Code != 1 || exit.RestartCount != 3 || exit.Restarting {
		t.Fatalf("exit %+v, want code 1 after 3 restarts", exit)
	}
	runs := readTimes(t, filepath.Join(dir, "runs"))
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 4", len(runs))
	}
	if got := lines(t, filepath.Join(dir, "cleanup.args")); len(got) != 4 {
		t.Fatalf("cleanup ran %d times", len(got))
	}
	var gaps []time.Duration
	for i := 1; i < len(runs); i++ {
		gaps = append(gaps, runs[i].Sub(runs[i-1]))
	}
	t.Logf("restart gaps: %v", gaps)
	for i, min := range []time.Duration{100, 200, 400} {
		if gaps[i] < min*time.Millisecond-10*time.Millisecond {
			t.Errorf("gap %d = %v, want >= %dms (back-off 100ms doubling)", i, gaps[i], min)
		}
	}
	if !(gaps[2] > gaps[1] && gaps[1] > gaps[0]) {
		t.Errorf("gaps do not grow: %v", gaps)
	}
}

func TestRestartAlwaysUntilStopRequested(t *testing.T) {
	dir := newDir(t)
	spawnT(t, dir, Config{Restart: RestartAlways, Start: container(`date +%s%N >> runs; sleep 0.2; exit 0`)})
	runs := filepath.Join(dir, "runs")
	waitFor(t, "3 runs", 10*time.Second, func() bool { return len(lines(t, runs)) >= 3 })
	s, err := GetStatus(dir)
	if err != nil || s.RestartCount < 2 {
		t.Fatalf("status %+v %v", s, err)
	}
	if err := StopRequested(dir); err != nil {
		t.Fatal(err)
	}
	exit := waitExit(t, dir, 10*time.Second)
	n := len(lines(t, runs))
	time.Sleep(700 * time.Millisecond)
	if m := len(lines(t, runs)); m != n {
		t.Fatalf("restarted after stop-requested: %d runs, then %d", n, m)
	}
	if exit.Restarting || exit.Code != 0 {
		t.Fatalf("exit %+v", exit)
	}
}

func TestHealthChecks(t *testing.T) {
	dir := newDir(t)
	health := script(t, dir, "health.sh", `date +%s%N >> health.runs
if [ -e hang ]; then sleep 10; fi
test -e healthy`)
	if err := os.WriteFile(filepath.Join(dir, "healthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spawnT(t, dir, Config{Start: container(`exec sleep 60`), Health: []string{health},
		HealthInterval: 200 * time.Millisecond, HealthTimeout: 150 * time.Millisecond, HealthRetries: 2})
	runs := filepath.Join(dir, "health.runs")
	waitFor(t, "5 health checks", 5*time.Second, func() bool { return len(lines(t, runs)) >= 5 })
	ts := readTimes(t, runs)
	for i := 1; i < len(ts); i++ {
		// The interval counts from the end of the previous check (as Docker).
		if d := ts[i].Sub(ts[i-1]); d < 195*time.Millisecond || d > 600*time.Millisecond {
			t.Fatalf("health checks %v apart at a 200ms interval", d)
		}
	}
	s, err := GetStatus(dir)
	if err != nil || s.Health != "healthy" {
		t.Fatalf("status %+v %v", s, err)
	}
	// Failing checks: unhealthy after 2 in a row.
	os.Remove(filepath.Join(dir, "healthy"))
	waitFor(t, "unhealthy", 3*time.Second, func() bool {
		s, _ := GetStatus(dir)
		return s.Health == "unhealthy" && s.FailingStreak >= 2
	})
	// A hanging check is killed after the timeout and the next ones still run,
	// one at a time.
	os.WriteFile(filepath.Join(dir, "hang"), nil, 0o644)
	before := len(lines(t, runs))
	time.Sleep(1200 * time.Millisecond)
	ts = readTimes(t, runs)[before:]
	if len(ts) < 2 || len(ts) > 4 {
		t.Fatalf("%d hanging checks in 1.2s, want 2-4 (200ms interval + 150ms timeout)", len(ts))
	}
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d < 340*time.Millisecond {
			t.Fatalf("checks %v apart: a hanging check was not waited for (timeout 150ms + interval 200ms)", d)
		}
	}
	if err := StopRequested(dir); err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, PidFile))))))
	syscall.Kill(pid, syscall.SIGTERM)
	exit := waitExit(t, dir, 10*time.Second)
	if exit.Code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %+v, want 143", exit)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestStartFailure(t *testing.T) {
	dir := newDir(t)
	cleanup := script(t, dir, "cleanup.sh", `echo "$@" >> cleanup.args`)
	start := script(t, dir, "start.sh", `echo "image not found: nope" >&3; exit 7`)
	spawnT(t, dir, Config{Restart: RestartAlways, Start: []string{start}, Cleanup: []string{cleanup}})
	exit := waitExit(t, dir, 10*time.Second)
	if !exit.StartFailed || exit.Code != 7 || exit.Error != "image not found: nope" || exit.Restarting {
		t.Fatalf("exit %+v", exit)
	}
	if got := lines(t, filepath.Join(dir, "cleanup.args")); len(got) != 1 || got[0] != "7" {
		t.Fatalf("cleanup args %q", got)
	}

	dir = newDir(t)
	spawnT(t, dir, Config{Start: []string{"/nonexistent/berth"}})
	exit = waitExit(t, dir, 10*time.Second)
	if !exit.StartFailed || exit.Code != 127 || !strings.Contains(exit.Error, "/nonexistent/berth") {
		t.Fatalf("exit %+v", exit)
	}

	dir = newDir(t)
	spawnT(t, dir, Config{Start: []string{"/bin/true"}})
	exit = waitExit(t, dir, 10*time.Second)
	if !exit.StartFailed || !strings.Contains(exit.Error, "pid") {
		t.Fatalf("exit %+v", exit)
	}
}

func TestBadConfig(t *testing.T) {
	dir := newDir(t)
	for _, c := range []Config{
		{},
		{Start: []string{"berth"}},
		{Start: []string{"/bin/true"}, Restart: "sometimes"},
		{Start: []string{"/bin/true"}, HealthInterval: time.Second},
	} {
		if _, err := Spawn(dir, c, helper); err == nil {
			t.Errorf("Spawn(%+v) accepted", c)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, confFile), []byte("start=/bin/true\ncolour=blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := spawn(dir, "x", helper, nil)
	if err == nil || !strings.Contains(err.Error(), "unknown key colour") {
		t.Fatalf("spawn with a bad config: %v", err)
	}
	if Alive(dir) {
		t.Fatal("supervisor alive after a bad config")
	}
}

// fdTargets lists the open descriptors of pid and what they point to.
func fdTargets(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			m[e.Name()] = target
		}
	}
	return m
}

// TestNoDescriptorLeaks looks at the callbacks' descriptors from outside
// while they run: exactly what the supervisor hands them, nothing else.
func TestNoDescriptorLeaks(t *testing.T) {
	dir := newDir(t)
	start := script(t, dir, "start.sh", `echo $$ > start.pid; sleep 0.5
exec `+helper+` bg pid /bin/sh -c 'exit 0'`)
	cleanup := script(t, dir, "cleanup.sh", `echo $$ > cleanup.pid; sleep 0.5`)
	spawnT(t, dir, Config{LogPath: filepath.Join(dir, "ctr-json.log"), OpenStdin: true, Start: []string{start}, Cleanup: []string{cleanup}})
	check := func(name string, allowed map[string]string) {
		path := filepath.Join(dir, name)
		waitFor(t, name, 5*time.Second, func() bool { return len(lines(t, path)) == 1 })
		pid, _ := strconv.Atoi(lines(t, path)[0])
		for fd, target := range fdTargets(t, pid) {
			want, ok := allowed[fd]
			if !ok && strings.HasSuffix(target, ".sh") {
				continue // the shell reading its script
			}
			if !ok || !strings.HasPrefix(target, want) {
				t.Errorf("%s: fd %s -> %s leaked", name, fd, target)
			}
		}
	}
	check("start.pid", map[string]string{"0": "pipe:", "1": "pipe:", "2": "pipe:", "3": filepath.Join(dir, StartErrFile)})
	check("cleanup.pid", map[string]string{"0": "/dev/null", "1": "/dev/null", "2": filepath.Join(dir, logFile)})
	waitExit(t, dir, 10*time.Second)
}

// TestEngineKilled: the process that spawned the supervisor is killed -9;
// the supervisor carries on.
func TestEngineKilled(t *testing.T) {
	dir := newDir(t)
	logPath := filepath.Join(dir, "ctr-json.log")
	cfg, _ := json.Marshal(Config{LogPath: logPath, Start: container(`sleep 1; echo bye; exit 4`)})
	engine := exec.Command(helper, "spawn", dir, string(cfg))
	out, err := engine.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(); err != nil {
		t.Fatal(err)
	}
	var line [32]byte
	n, _ := out.Read(line[:])
	pid, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		engine.Process.Kill()
		engine.Wait()
		t.Fatalf("engine printed %q", line[:n])
	}
	engine.Process.Kill()
	engine.Wait()
	if p, ok := Pid(dir); !ok || p != pid {
		t.Fatalf("supervisor %d not alive after the engine was killed", pid)
	}
	exit := waitExit(t, dir, 10*time.Second)
	if exit.Code != 4 {
		t.Fatalf("exit %+v", exit)
	}
	es := readLog(t, logPath)
	if len(es) != 1 || es[0].Log != "bye\n" {
		t.Fatalf("log %+v", es)
	}
}

func TestSupervisorKilledIsNotAlive(t *testing.T) {
	dir := newDir(t)
	pid := spawnT(t, dir, Config{Start: container(`exec sleep 30`)})
	if !Alive(dir) {
		t.Fatal("not alive after Spawn")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "supervisor gone", 5*time.Second, func() bool { return !Alive(dir) })
	if _, err := GetStatus(dir); err == nil {
		t.Fatal("status answered by a killed supervisor")
	}
}

// procStatus returns a field of /proc/PID/status or smaps_rollup in kB.
func procKB(t *testing.T, file, field string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("%s: no %s", file, field)
	return 0
}

func cpuTicks(t *testing.T, pid int) int {
	data := must(os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)))
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// TestIdleMemoryAndCPU measures the supervisor of a running container with
// an attached client that has closed its input (the usual detached-stdin
// state): resident memory and CPU while idle.
func TestIdleMemoryAndCPU(t *testing.T) {
	dir := newDir(t)
	pid := spawnT(t, dir, Config{LogPath: filepath.Join(dir, "ctr-json.log"), OpenStdin: true,
		Health: []string{"/bin/true"}, HealthInterval: time.Hour,
		Start: container(`echo hello; exec sleep 60`)})
	waitFor(t, "running", 5*time.Second, func() bool { s, _ := GetStatus(dir); return s.State == "running" })
	a, err := Attach(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Write([]byte("input\n"))
	a.CloseWrite()
	status := fmt.Sprintf("/proc/%d/status", pid)
	rollup := fmt.Sprintf("/proc/%d/smaps_rollup", pid)
	measure := func(when string) int {
		rss, pss := procKB(t, status, "VmRSS"), procKB(t, rollup, "Pss")
		anon, file := procKB(t, status, "RssAnon"), procKB(t, status, "RssFile")
		t.Logf("supervisor %s: VmRSS %d kB (anon %d, file %d), Pss %d kB", when, rss, anon, file, pss)
		return rss
	}
	time.Sleep(200 * time.Millisecond)
	// Just after output, attach, input and a status command.
	if _, err := GetStatus(dir); err != nil {
		t.Fatal(err)
	}
	if rss := measure("active"); rss > 2048 {
		t.Errorf("VmRSS %d kB while active, want < 2 MiB", rss)
	}
	before := cpuTicks(t, pid)
	time.Sleep(3 * time.Second)
	ticks := cpuTicks(t, pid) - before
	t.Logf("supervisor CPU: %d ticks in 3 idle seconds", ticks)
	if rss := measure("idle"); rss > 1024 {
		t.Errorf("VmRSS %d kB while idle, want < 1 MiB", rss)
	}
	if ticks > 2 {
		t.Errorf("%d CPU ticks in 3 idle seconds: busy loop", ticks)
	}
	// Still fully working after giving its pages back.
	if s, err := GetStatus(dir); err != nil || s.State != "running" {
		t.Fatalf("status after idling: %+v %v", s, err)
	}
}
