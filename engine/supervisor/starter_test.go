package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// execSh has the supervisor start sh -c body, with extra as descriptor 3.
func execSh(t *testing.T, st *Starter, body string, extra *os.File) int {
	t.Helper()
	sh, err := os.Open("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	r := ExecRequest{Exe: sh, Args: []string{"sh", "-c", body}, Env: []string{"BERTH_TEST=x"}}
	if extra != nil {
		r.Files = []*os.File{extra}
	}
	pid, err := st.Exec(r)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestStarterRunsTheEnginesProcess(t *testing.T) {
	dir := newDir(t)
	logPath := filepath.Join(dir, "ctr.log")
	_, st, err := SpawnStarter(dir, Config{Start: container("exit 9"), LogPath: logPath}, helper)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Attach(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The process waits for the go (a byte on fd 3), as an init waits
	// for its start.
	pid := execSh(t, st, `read x <&3; echo "out $BERTH_TEST $x"; echo err >&2; exit 7`, r)
	if _, err := st.Exec(ExecRequest{Exe: r, Args: []string{"x"}}); err == nil {
		t.Fatal("a second exec was accepted")
	}
	w.Write([]byte("go\n"))
	w.Close()
	if err := st.Started(pid); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if err := conn.Copy(&out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "out x go\n" || errOut.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
	exit := waitExit(t, dir, 10*time.Second)
	if exit.StartFailed || exit.Code != 7 {
		t.Fatalf("exit %+v", exit)
	}
	if got := readLog(t, logPath); len(got) != 2 {
		t.Fatalf("log %+v", got)
	}
}

func TestStarterFailedAndEngineDied(t *testing.T) {
	for _, how := range []string{"failed", "died"} {
		t.Run(how, func(t *testing.T) {
			dir := newDir(t)
			cleanup := script(t, dir, "cleanup.sh", `echo "$@" >> cleanup.args`)
			_, st, err := SpawnStarter(dir, Config{Restart: RestartAlways, Start: container("exit 9"), Cleanup: []string{cleanup}}, helper)
			if err != nil {
				t.Fatal(err)
			}
			pid := execSh(t, st, `exec sleep 60`, nil)
			if how == "failed" {
				if err := st.Failed(127, "exec: nope: no such file"); err != nil {
					t.Fatal(err)
				}
			} else {
				st.Close()
			}
			exit := waitExit(t, dir, 10*time.Second)
			if !exit.StartFailed || exit.Restarting {
				t.Fatalf("exit %+v", exit)
			}
			if how == "failed" && (exit.Code != 127 || exit.Error != "exec: nope: no such file") {
				t.Fatalf("exit %+v", exit)
			}
			if how == "died" && (exit.Code != 125 || !strings.Contains(exit.Error, "exited before it started")) {
				t.Fatalf("exit %+v", exit)
			}
			// What the engine had started is gone.
			waitFor(t, "the started process to be killed", 5*time.Second, func() bool {
				stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
				if err != nil {
					return true
				}
				i := strings.LastIndexByte(string(stat), ')')
				return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
			})
			// The engine that reports a failure cleaned up itself; one
			// that died did not.
			_, err = os.Stat(filepath.Join(dir, "cleanup.args"))
			if how == "failed" && err == nil {
				t.Fatal("cleanup callback after a reported failure")
			}
			if got := lines(t, filepath.Join(dir, "cleanup.args")); how == "died" && (len(got) != 1 || got[0] != "125") {
				t.Fatalf("cleanup args %q", got)
			}
		})
	}
}
