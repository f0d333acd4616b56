package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The container's init runs one of two ways: the C init (a plan executed
// before the Go runtime starts, for the common configurations) or the Go
// init (everything else, and every create with BERTH_RUNC_GOINIT=1). These
// tests check which one a configuration takes, that both build the same
// container, and that the attacks the runtime must stop fail on both.

var inits = []struct {
	name string
	env  []string
}{
	{"c-init", nil},
	{"go-init", []string{"BERTH_RUNC_GOINIT=1"}},
}

// tookCInit reports whether a traced berth-runc run used the C init.
func tookCInit(stderr string) bool { return strings.Contains(stderr, "cinit: exec") }

// TestCInitIsTakenWhereItApplies: the default profile (seccomp,
// capabilities, masked paths, cgroup mount) and a joined network namespace
// take the C init; a user namespace or a createContainer hook does not.
func TestCInitIsTakenWhereItApplies(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*bundle)
		want   bool
	}{
		{"default profile", func(*bundle) {}, true},
		{"joined network namespace", func(b *bundle) {
			for i, ns := range b.Spec.Linux.Namespaces {
				if ns.Type == specs.NetworkNamespace {
					b.Spec.Linux.Namespaces[i].Path = "/proc/self/ns/net" // the runtime's own: the host's
				}
			}
		}, true},
		{"user namespace", func(b *bundle) {
			b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
			b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
			chownTree(t, b.Dir+"/rootfs", 300000)
		}, false},
		{"createContainer hook", func(b *bundle) {
			b.Spec.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/true"}}}
		}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBundle(t, "true")
			b.Env = []string{"BERTH_RUNC_TRACE=1"}
			c.mutate(b)
			r := b.run("cinit-taken-" + itoa(i))
			if r.Code != 0 {
				t.Fatalf("run: exit %d: %s", r.Code, r.Stderr)
			}
			if got := tookCInit(r.Stderr); got != c.want {
				t.Errorf("C init taken: %v, want %v (trace:\n%s)", got, c.want, r.Stderr)
			}
		})
	}
}

// TestCInitBuildsWhatGoInitBuilds runs the same rich configuration through
// both inits and compares everything the container can observe: mounts
// and their options, /dev, credentials, capabilities, no_new_privs,
// seccomp, rlimits, umask, cwd, hostname, sysctls, oom_score_adj, cgroups.
func TestCInitBuildsWhatGoInitBuilds(t *testing.T) {
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "f"), []byte("data"), 0o644)
	script := `cut -d' ' -f4- /proc/self/mountinfo; for d in / /dev /dev/pts /sys/fs/cgroup /data /work; do ls -lan $d | awk '{print $1, $3, $4, $5, $NF}'; done;
grep -e Cap -e NoNewPrivs -e Seccomp -e Groups /proc/self/status; id; ulimit -n; ulimit -s; umask; pwd; hostname;
cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj /proc/self/cgroup; cat /data/f; ls /proc/self/fd`
	var outs []string
	for i, in := range inits {
		b := newBundle(t, "sh", "-c", script)
		b.Env = append([]string{"BERTH_RUNC_TRACE=1"}, in.env...)
		s := b.Spec
		s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 1001}}
		umask := uint32(0o027)
		s.Process.User.Umask = &umask
		s.Process.Cwd = "/work/sub"
		oom := 300
		s.Process.OOMScoreAdj = &oom
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024}, {Type: "RLIMIT_STACK", Soft: 4 << 20, Hard: 8 << 20}}
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/data", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro", "nosuid"}},
			specs.Mount{Destination: "/data2/f", Type: "bind", Source: filepath.Join(hostDir, "f"), Options: []string{"bind", "rprivate"}},
			specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "noexec", "ro"}},
			specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"rnosuid", "rnodev"}},
		)
		r := b.run("cinit-same-" + itoa(i))
		if r.Code != 0 {
			t.Fatalf("%s: exit %d: %s", in.name, r.Code, r.Stderr)
		}
		if got, want := tookCInit(r.Stderr), in.env == nil; got != want {
			t.Fatalf("%s: C init taken %v, want %v", in.name, got, want)
		}
		// What differs by construction: the bundle's path, the id.
		out := strings.ReplaceAll(r.Stdout, b.Dir, "BUNDLE")
		outs = append(outs, strings.ReplaceAll(out, "cinit-same-"+itoa(i), "ID"))
	}
	if outs[0] != outs[1] {
		t.Errorf("the C init's container differs from the Go init's\nC init:\n%s\nGo init:\n%s", outs[0], outs[1])
	}
	for _, want := range []string{"uid=1000 gid=1000", "/work/sub", "\n512\n", "\n0027\n", "\ndata"} {
		if !strings.Contains(outs[0], want) {
			t.Errorf("the container's view lacks %q:\n%s", want, outs[0])
		}
	}
}

// TestInitExitCodes: a program that is not there exits 127, one that
// cannot be executed 126, with the same message from both inits.
func TestInitExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"/nonexistent"}, 127, "no such file or directory"},
		{[]string{"nosuchprogram"}, 127, "executable file not found in $PATH"},
		{[]string{"/etc/passwd"}, 126, "permission denied"},
	}
	for i, c := range cases {
		var stderrs []string
		for j, in := range inits {
			b := newBundle(t, c.args...)
			b.Env = in.env
			r := b.run("cinit-code-" + itoa(i) + "-" + itoa(j))
			if r.Code != c.code || !strings.Contains(r.Stderr, c.msg) {
				t.Errorf("%s: %v: exit %d, stderr %q; want %d and %q", in.name, c.args, r.Code, r.Stderr, c.code, c.msg)
			}
			stderrs = append(stderrs, r.Stderr)
		}
		if stderrs[0] != stderrs[1] {
			t.Errorf("%v: the inits report differently:\nC:  %q\nGo: %q", c.args, stderrs[0], stderrs[1])
		}
	}
}

// TestInitAttacksFailOnBothPaths repeats the file descriptor, /proc
// symlink and mount-through-symlink attacks against each init.
func TestInitAttacksFailOnBothPaths(t *testing.T) {
	for _, in := range inits {
		t.Run(in.name, func(t *testing.T) {
			// CVE-2024-21626: a created container's init holds nothing else.
			b := newBundle(t, "sleep", "1000")
			b.Env = in.env
			b.create("fds")
			pid := b.state("fds").Pid
			ents, err := os.ReadDir("/proc/" + itoa(pid) + "/fd")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				target, _ := os.Readlink("/proc/" + itoa(pid) + "/fd/" + e.Name())
				switch {
				case e.Name() == "0" || e.Name() == "1" || e.Name() == "2":
				case strings.HasSuffix(target, "/exec.fifo"):
				case in.env != nil && strings.HasPrefix(target, "anon_inode:"): // the Go runtime's poller
				default:
					t.Errorf("init holds fd %s -> %s", e.Name(), target)
				}
			}
			// A cwd through a leaked descriptor is refused.
			b = newBundle(t, "true")
			b.Env = in.env
			b.Spec.Process.Cwd = "/proc/self/fd/5"
			if r := b.run("cwd-fd"); r.Code == 0 {
				t.Errorf("cwd /proc/self/fd/5 was accepted")
			}
			// A symlinked /proc is refused.
			b = newBundle(t, "true")
			b.Env = in.env
			p := filepath.Join(b.Dir, "rootfs", "proc")
			os.Remove(p)
			os.Symlink("/tmp", p)
			if r := b.run("proc-symlink"); r.Code == 0 || !strings.Contains(r.Stderr, "/proc in the rootfs is a symlink") {
				t.Errorf("a /proc symlink was accepted or not named: %d %q", r.Code, r.Stderr)
			}
			assertNothingLeft(t, b, "proc-symlink")
			// A mount through a symlink to a host directory lands inside.
			hostDir := t.TempDir()
			b = newBundle(t, "sh", "-c", "echo inside > /escape/x && cat /escape/x")
			b.Env = in.env
			os.Symlink(hostDir, filepath.Join(b.Dir, "rootfs", "escape"))
			b.Spec.Mounts = append(b.Spec.Mounts, specs.Mount{Destination: "/escape", Type: "tmpfs", Source: "tmpfs"})
			if r := b.run("escape"); r.Code != 0 || r.Stdout != "inside\n" {
				t.Errorf("tmpfs through a symlink: exit %d, out %q, err %q", r.Code, r.Stdout, r.Stderr)
			}
			if ents, _ := os.ReadDir(hostDir); len(ents) != 0 {
				t.Errorf("the host directory behind the symlink was written: %v", ents)
			}
			for _, l := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
				if strings.Contains(l, hostDir) {
					t.Errorf("a mount landed on the host path: %s", l)
				}
			}
		})
	}
}
