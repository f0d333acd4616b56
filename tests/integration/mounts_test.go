package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestMountsAndProcessSettings(t *testing.T) {
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "f"), []byte("from host\n"), 0o644)
	script := strings.Join([]string{
		"cat /data/f",
		"touch /data/new 2>/dev/null && echo data-writable || echo data-ro",
		"touch /etc/x 2>/dev/null && echo root-writable || echo root-ro",
		"touch /scratch/x && echo scratch-ok",
		"df -k /scratch | tail -1 | awk '{print $2}'",
		"stat -c %a /scratch",
		"wc -c < /proc/timer_list",
		"echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo procsys-writable || echo procsys-ro",
		"ls /dev | tr '\\n' ' '; echo",
		"for l in /dev/fd /dev/stdin /dev/ptmx; do printf '%s ' $(readlink $l); done; echo",
		"ulimit -n",
		"umask",
		"id -G",
		"cat /proc/self/oom_score_adj",
		"cat /proc/sys/net/ipv4/ip_forward",
		"pwd",
		"cat /proc/sys/kernel/domainname",
		"stat -c '%t:%T' /dev/berthnull",
	}, "; ")
	b := newBundle(t, "sh", "-c", script)
	b.Spec.Root.Readonly = true
	b.Spec.Mounts = append(b.Spec.Mounts,
		specs.Mount{Destination: "/data", Type: "bind", Source: host, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=2m", "mode=1777"}},
	)
	b.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 321}}
	mask := uint32(0o027)
	b.Spec.Process.User.Umask = &mask
	b.Spec.Process.User.AdditionalGids = []uint32{10, 20}
	adj := 123
	b.Spec.Process.OOMScoreAdj = &adj
	b.Spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	b.Spec.Process.Cwd = "/work/dir"
	b.Spec.Domainname = "berth.example"
	mode := os.FileMode(0o666)
	zero := uint32(0)
	b.Spec.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/berthnull", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: &zero, GID: &zero}}
	r := b.run("mounts")
	if r.Code != 0 {
		t.Fatalf("run: %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	got := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	want := []string{
		"from host", "data-ro", "root-ro", "scratch-ok", "2048", "1777", "0", "procsys-ro",
		"", "/proc/self/fd /proc/self/fd/0 pts/ptmx ", "321", "0027", "0 10 20", "123", "1", "/work/dir", "berth.example", "1:3",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s\nstderr: %s", len(got), len(want), r.Stdout, r.Stderr)
	}
	for i := range want {
		if i == 8 { // /dev listing
			for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"} {
				if !strings.Contains(" "+got[i]+" ", " "+d+" ") {
					t.Errorf("/dev lacks %s: %q", d, got[i])
				}
			}
			if strings.Contains(got[i], "sda") || strings.Contains(got[i], "vda") {
				t.Errorf("/dev shows a host disk: %q", got[i])
			}
			continue
		}
		if got[i] != want[i] {
			t.Errorf("line %d (%s): got %q, want %q", i, strings.Split(script, "; ")[i], got[i], want[i])
		}
	}
	if _, err := os.Stat(filepath.Join(host, "new")); err == nil {
		t.Errorf("the read-only bind mount was written")
	}
}

func TestNoPivot(t *testing.T) {
	b := newBundle(t, "sh", "-c", "cat /proc/self/mountinfo | head -1; ls /")
	b.write()
	r := b.runc("run", "--no-pivot", "--bundle", b.Dir, "nopivot")
	if r.Code != 0 {
		t.Fatalf("run --no-pivot: %d %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "bin") || strings.Contains(r.Stdout, "home\n") && strings.Contains(r.Stdout, "usr\n") {
		t.Errorf("--no-pivot root listing looks wrong: %q", r.Stdout)
	}
}
