package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A hook can also be this test binary: with BERTH_HOOKS_HELPER_OUT in its
// environment it records exactly what it was given (argv, environment,
// stdin) as JSON, which a shell script cannot (the kernel rewrites a script's
// argv[0] and the shell adds variables).
const helperOutEnv = "BERTH_HOOKS_HELPER_OUT"

type record struct {
	Args  []string
	Env   []string
	Stdin string
}

func TestMain(m *testing.M) {
	if out := os.Getenv(helperOutEnv); out != "" {
		stdin, _ := io.ReadAll(os.Stdin)
		b, _ := json.Marshal(record{Args: os.Args, Env: os.Environ(), Stdin: string(stdin)})
		if err := os.WriteFile(out, b, 0o644); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func intp(i int) *int { return &i }

func testState(bundle string) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          "berth-hooks-test",
		Status:      specs.StateCreated,
		Pid:         4242,
		Bundle:      bundle,
		Annotations: map[string]string{"org.example.key": "value"},
	}
}

func TestScriptGetsStateAndArgs(t *testing.T) {
	dir := t.TempDir()
	// The hook saves its stdin and its arguments after $0.
	hook := script(t, dir, "record", `
cat > "$1/state.json"
shift
printf '%s\n' "$@" > "$(dirname "$0")/args"
`)
	state := testState(dir)
	h := specs.Hook{Path: hook, Args: []string{"record", dir, "two words", "three"}, Timeout: intp(10)}
	if err := Run("prestart", []specs.Hook{h}, state); err != nil {
		t.Fatalf("Run: %v", err)
	}

	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got specs.State
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("hook stdin is not JSON: %v: %q", err, data)
	}
	if got.ID != "berth-hooks-test" || got.Pid != 4242 || got.Bundle != dir ||
		got.Status != specs.StateCreated || got.Version != specs.Version ||
		got.Annotations["org.example.key"] != "value" {
		t.Fatalf("hook got state %+v, want %+v", got, *state)
	}
	for _, field := range []string{`"ociVersion"`, `"id"`, `"status":"created"`, `"pid":4242`, `"bundle"`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("state JSON %s lacks %s", data, field)
		}
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if string(args) != "two words\nthree\n" {
		t.Fatalf("hook args after the first %q, want %q", args, "two words\nthree\n")
	}
}

func TestExactArgvAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "record.json")
	exe := testBinary(t)
	h := specs.Hook{
		Path: exe,
		Args: []string{"berth-custom-argv0", "--flag", "x y"},
		Env:  []string{helperOutEnv + "=" + out, "BERTH_HOOK_VAR=one two"},
	}
	if err := Run("createContainer", []specs.Hook{h}, testState(dir)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rec := readRecord(t, out)
	if !slices.Equal(rec.Args, h.Args) {
		t.Errorf("argv %q, want %q", rec.Args, h.Args)
	}
	if !slices.Equal(rec.Env, h.Env) {
		t.Errorf("environment %q, want exactly %q", rec.Env, h.Env)
	}
	var st specs.State
	if err := json.Unmarshal([]byte(rec.Stdin), &st); err != nil || st.ID != "berth-hooks-test" {
		t.Errorf("stdin %q (err %v), want the state", rec.Stdin, err)
	}
}

func TestEmptyArgsRunsPathAsArgv0(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "record.json")
	exe := testBinary(t)
	// The helper needs its env to report; this also checks Args=nil.
	h := specs.Hook{Path: exe, Env: []string{helperOutEnv + "=" + out}}
	if err := Run("poststart", []specs.Hook{h}, testState(dir)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rec := readRecord(t, out); !slices.Equal(rec.Args, []string{exe}) {
		t.Fatalf("argv %q, want [%s]", rec.Args, exe)
	}
}

func TestNilEnvIsEmpty(t *testing.T) {
	t.Setenv("BERTH_SHOULD_NOT_LEAK", "1")
	dir := t.TempDir()
	hook := script(t, dir, "env", `/usr/bin/env > "$(/usr/bin/dirname "$0")/env"`+"\n")
	if err := Run("poststop", []specs.Hook{{Path: hook}}, testState(dir)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if strings.Contains(string(env), "BERTH_SHOULD_NOT_LEAK") {
		t.Fatalf("hook without env inherited the runtime's environment:\n%s", env)
	}
}

func TestRunsInOrderAndStopsAtFailure(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	first := script(t, dir, "first", "echo first >> "+log+"\n")
	failing := script(t, dir, "failing", "echo second >> "+log+"\necho 'no such network' >&2\nexit 3\n")
	third := script(t, dir, "third", "echo third >> "+log+"\n")

	err := Run("prestart", []specs.Hook{{Path: first}, {Path: failing}, {Path: third}}, testState(dir))
	if err == nil {
		t.Fatal("Run succeeded with a failing hook")
	}
	b, _ := os.ReadFile(log)
	if string(b) != "first\nsecond\n" {
		t.Fatalf("hooks ran %q, want first then second and nothing after the failure", b)
	}
	msg := err.Error()
	for _, want := range []string{"prestart hook", failing, "exit status 3", "no such network"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	var herr *Error
	if !errors.As(err, &herr) || herr.Kind != "prestart" || herr.Path != failing || herr.Stderr != "no such network" {
		t.Fatalf("error %#v, want *Error{prestart, %s, no such network}", err, failing)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Fatalf("error does not unwrap to exit code 3: %v", err)
	}
}

func TestStderrIsTrimmedToTheLastKiB(t *testing.T) {
	dir := t.TempDir()
	// 5000 'a's then a final message: the message must survive the cut.
	hook := script(t, dir, "noisy", `
i=0
while [ $i -lt 50 ]; do printf '%0100d' 0 | tr 0 a >&2; i=$((i+1)); done
printf '\n  final reason  \n\n' >&2
exit 1
`)
	err := Run("createRuntime", []specs.Hook{{Path: hook}}, testState(dir))
	var herr *Error
	if !errors.As(err, &herr) {
		t.Fatalf("error %v, want *Error", err)
	}
	if len(herr.Stderr) > 1024 {
		t.Fatalf("stderr in error is %d bytes, want at most 1024", len(herr.Stderr))
	}
	if !strings.HasSuffix(herr.Stderr, "final reason") || !strings.HasPrefix(herr.Stderr, "...aaa") {
		t.Fatalf("stderr in error %q..., want the trimmed tail with a cut mark", herr.Stderr[:20])
	}
}

func TestTimeoutKillsHookAndItsChildren(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// The hook starts a child that would hold its stderr open, then hangs.
	hook := script(t, dir, "hang", `
sleep 300 &
echo $! > `+pidFile+`
echo 'waiting for the network' >&2
wait
`)
	start := time.Now()
	err := Run("createRuntime", []specs.Hook{{Path: hook, Timeout: intp(1)}}, testState(dir))
	elapsed := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	if elapsed < time.Second || elapsed > 5*time.Second {
		t.Fatalf("Run returned after %v, want about the 1s timeout", elapsed)
	}
	for _, want := range []string{"createRuntime hook", hook, "timed out after 1s", "waiting for the network"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// Killed and reaped by init (or a subreaper) shortly after.
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the hook's child %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestFastHookUnderTimeoutSucceeds(t *testing.T) {
	dir := t.TempDir()
	hook := script(t, dir, "quick", "exit 0\n")
	if err := Run("startContainer", []specs.Hook{{Path: hook, Timeout: intp(30)}}, testState(dir)); err != nil {
		t.Fatal(err)
	}
}

func TestHookLeavingADaemonDoesNotHang(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "daemon.pid")
	// The daemon keeps the hook's stderr open after the hook exits 0.
	hook := script(t, dir, "daemonize", "sleep 30 &\necho $! > "+pidFile+"\nexit 0\n")
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	start := time.Now()
	if err := Run("poststart", []specs.Hook{{Path: hook}}, testState(dir)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Run took %v waiting for the daemon", d)
	}
}

func TestStartFailure(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	missing := filepath.Join(dir, "missing")
	for _, path := range []string{notExec, missing} {
		err := Run("prestart", []specs.Hook{{Path: path}}, testState(dir))
		if err == nil || !strings.Contains(err.Error(), "prestart hook "+path) {
			t.Errorf("Run(%s) error %v, want a start failure naming the hook", path, err)
		}
	}
	if err := Run("prestart", []specs.Hook{{Path: missing}}, testState(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing hook error %v, want ErrNotExist", err)
	}
}

func TestInvalidHooksRunNothing(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	good := script(t, dir, "good", "touch "+marker+"\n")
	for name, bad := range map[string]specs.Hook{
		"zero timeout":     {Path: good, Timeout: intp(0)},
		"negative timeout": {Path: good, Timeout: intp(-5)},
		"relative path":    {Path: "bin/hook"},
		"empty path":       {},
	} {
		err := Run("prestart", []specs.Hook{{Path: good}, bad}, testState(dir))
		if err == nil || !strings.HasPrefix(err.Error(), "prestart hook") {
			t.Errorf("%s: error %v, want an invalid prestart hook error", name, err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s: a hook ran although the list was invalid", name)
		}
	}
}

func TestNoHooks(t *testing.T) {
	if err := Run("poststop", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func readRecord(t *testing.T, path string) record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook did not record: %v", err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}
