package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func startSleeper(t *testing.T, id string, mutate func(*bundle)) *bundle {
	t.Helper()
	b := newBundle(t, "sleep", "1000")
	if mutate != nil {
		mutate(b)
	}
	b.create(id)
	b.mustRunc("start", id)
	// start returns once the program is released; wait until the init
	// has exec'd it, as a caller would before inspecting the container.
	pid := b.state(id).Pid
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		cmd, err := os.ReadFile("/proc/" + itoa(pid) + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "berth-runc") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b
}

func TestExec(t *testing.T) {
	b := startSleeper(t, "exec1", nil)
	out := b.mustRunc("exec", "exec1", "sh", "-c", "echo pid=$$ host=$(hostname); ps -o pid,args | awk '$1==1{print $2}'")
	f := strings.Fields(out)
	if len(f) != 3 || f[1] != "host=berth-test" {
		t.Fatalf("exec output %q", out)
	}
	if f[0] == "pid=1" {
		t.Errorf("exec'd process is PID 1; it should be a new process in the container's pid namespace")
	}
	if f[2] != "sleep" {
		t.Errorf("exec does not see the container's sleep: %q", out)
	}
	// Exit codes, env, cwd, user.
	if r := b.runc("exec", "exec1", "sh", "-c", "exit 7"); r.Code != 7 {
		t.Errorf("exec exit code %d, want 7", r.Code)
	}
	out = b.mustRunc("exec", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "65534:65534", "exec1", "sh", "-c", "echo $FOO $(pwd) $(id -u) $(id -g)")
	if strings.TrimSpace(out) != "bar /tmp 65534 65534" {
		t.Errorf("exec with env/cwd/user printed %q", out)
	}
	// Detached exec with a pid file.
	pidfile := b.Dir + "/exec.pid"
	b.mustRunc("exec", "--detach", "--pid-file", pidfile, "exec1", "sleep", "1000")
	out = b.mustRunc("ps", "--format", "json", "exec1")
	if strings.Count(out, ",") < 1 {
		t.Errorf("ps after a detached exec lists %s, want two processes", out)
	}
	// --process FILE.
	p := specs.Process{Args: []string{"sh", "-c", "echo from-process-file"}, Cwd: "/", Env: []string{"PATH=/bin"}}
	writeJSON(t, b.Dir+"/process.json", p)
	if out := b.mustRunc("exec", "--process", b.Dir+"/process.json", "exec1"); strings.TrimSpace(out) != "from-process-file" {
		t.Errorf("exec --process printed %q", out)
	}
	if r := b.runc("exec", "exec1", "/no/such/program"); r.Code == 0 || !strings.Contains(r.Stderr, "no/such/program") {
		t.Errorf("exec of a missing program: %d %q", r.Code, r.Stderr)
	}
}

// TestExecUserNamespace enters a container that has its own user namespace.
func TestExecUserNamespace(t *testing.T) {
	b := startSleeper(t, "exec-userns", func(b *bundle) {
		b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
		b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
		chownTree(t, b.Dir+"/rootfs", 300000)
	})
	pid := b.state("exec-userns").Pid
	out := b.mustRunc("exec", "exec-userns", "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user")
	f := strings.Fields(out)
	if len(f) != 5 || f[0] != "0" || f[2] != "300000" {
		t.Fatalf("exec in user namespace printed %q", out)
	}
	if want := readlink(t, "/proc/"+itoa(pid)+"/ns/user"); f[4] != want {
		t.Errorf("exec'd process is in user namespace %s, want the container's %s", f[4], want)
	}
}
