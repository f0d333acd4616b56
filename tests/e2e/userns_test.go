package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// uidMap reads a container's /proc/self/uid_map: its single line
// "0 HOST SIZE".
func uidMap(t *testing.T, id string) (host, size int) {
	t.Helper()
	f := strings.Fields(must(t, "exec", id, "cat", "/proc/self/uid_map"))
	if len(f) != 3 || f[0] != "0" {
		t.Fatalf("uid_map of %s: %q, want one line mapping container id 0", id, f)
	}
	return atoi(f[1]), atoi(f[2])
}

// hostIDs reads the real uid and gid a host process runs as.
func hostIDs(t *testing.T, pid string) (uid, gid string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == "Uid:" {
			uid = f[1]
		}
		if len(f) > 1 && f[0] == "Gid:" {
			gid = f[1]
		}
	}
	return uid, gid
}

// TestUsernsRemap: --userns auto runs the container's root as an
// unprivileged host user, while the image's files still belong to it.
func TestUsernsRemap(t *testing.T) {
	// A host directory only host root may enter, with a secret in it.
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "key"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vol := "berth-userns-vol"
	t.Cleanup(func() { berth(t, "volume", "rm", "-f", vol) })
	a := runDetached(t, "--name", "berth-userns-a", "--userns", "auto", "-v", vol+":/data", "-v", secret+":/secret:ro", "busybox:1.35", "sleep", "300")
	host, size := uidMap(t, a)
	if host < 65536 || size != 65536 {
		t.Fatalf("--userns auto maps container root to host uid %d (%d ids), want an unprivileged range of 65536", host, size)
	}
	hs := strconv.Itoa(host)
	if uid, gid := hostIDs(t, inspect(t, a, "{{.State.Pid}}")); uid != hs || gid == "0" {
		t.Fatalf("the container's init runs on the host as uid %s gid %s, want uid %s and an unprivileged gid", uid, gid, hs)
	}
	if inspect(t, a, "{{.HostConfig.UsernsMode}}") != "auto" {
		t.Errorf("inspect shows UsernsMode %q", inspect(t, a, "{{.HostConfig.UsernsMode}}"))
	}

	// Inside, it is root, the image's files are its own and writable.
	if out := must(t, "exec", a, "sh", "-c", "id -u; stat -c %u:%g /bin/busybox /etc/passwd; echo ok >> /etc/passwd && echo wrote; touch /etc/hosts && echo hosts"); out != "0\n0:0\n0:0\nwrote\nhosts\n" {
		t.Fatalf("root in the container: %q", out)
	}
	if out := must(t, "exec", "-u", "1000", a, "id", "-u"); strings.TrimSpace(out) != "1000" {
		t.Fatalf("exec -u 1000: %q", out)
	}

	// What it cannot do: read host root's files through a bind mount,
	// make device nodes, write host-wide kernel settings.
	if r := berth(t, "exec", a, "cat", "/secret/key"); r.code == 0 || strings.Contains(r.out, "host secret") {
		t.Fatalf("container root read host root's 0600 file through a bind mount: %q", r.out)
	}
	if r := berth(t, "exec", a, "mknod", "/tmp/sda", "b", "8", "0"); r.code == 0 {
		t.Fatal("container root made a block device node")
	}
	if r := berth(t, "exec", a, "sh", "-c", "echo '|/tmp/x' > /proc/sys/kernel/core_pattern"); r.code == 0 {
		t.Fatal("container root wrote the host's core_pattern")
	}

	// A set-uid "root" binary it leaves in a volume belongs to its
	// unprivileged host uid: no way to root on the host.
	must(t, "exec", a, "sh", "-c", "cp /bin/busybox /data/rootsh && chmod 4755 /data/rootsh && echo v > /data/f")
	mp := inspect(t, a, `{{range .Mounts}}{{if eq .Destination "/data"}}{{.Source}}{{end}}{{end}}`)
	for _, f := range []string{"rootsh", "f"} {
		st, err := os.Stat(filepath.Join(mp, f))
		if err != nil {
			t.Fatal(err)
		}
		if uid := statUID(st); uid != host {
			t.Fatalf("volume file %s is owned by host uid %d, want the container root's %d", f, uid, host)
		}
	}

	// Another container gets a range of its own.
	b := runDetached(t, "--userns", "auto:size=5000", "busybox:1.35", "sleep", "300")
	hb, sb := uidMap(t, b)
	if sb != 5000 || (hb < host+size && host < hb+sb) {
		t.Fatalf("second container maps %d+%d, overlapping the first's %d+%d (or the wrong size)", hb, sb, host, size)
	}

	// cp in both directions keeps the container's view of owners.
	src := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(src, []byte("in\n"), 0o644)
	must(t, "cp", src, a+":/root/in.txt")
	if out := must(t, "exec", a, "stat", "-c", "%u", "/root/in.txt"); strings.TrimSpace(out) != "0" {
		t.Fatalf("a file copied in as root is owned by %q inside", out)
	}
	must(t, "exec", a, "sh", "-c", "echo x > /root/made && chown 33:33 /root/made")
	dir := t.TempDir()
	must(t, "cp", a+":/root/made", dir)
	if st, err := os.Stat(filepath.Join(dir, "made")); err != nil || statUID(st) != 33 {
		t.Fatalf("cp out of the container: %v, owner %d, want 33", err, statUID(st))
	}

	// Commit stores the container's own IDs: the image works anywhere.
	img := "berth-userns-commit:1"
	t.Cleanup(func() { berth(t, "rmi", "-f", img) })
	must(t, "commit", a, img)
	if out := must(t, "run", "--rm", img, "stat", "-c", "%u %n", "/root/made", "/root/in.txt", "/etc/passwd"); out != "33 /root/made\n0 /root/in.txt\n0 /etc/passwd\n" {
		t.Fatalf("committed image owners: %q", out)
	}

	// A new working directory belongs to the container's user; net.*
	// sysctls reach its network namespace (which the host owns).
	if out := must(t, "run", "--rm", "--userns", "auto", "-u", "1000:1000", "-w", "/work/dir", "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", "busybox:1.35",
		"sh", "-c", "stat -c %u:%g /work/dir; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; touch f && echo writable"); out != "1000:1000\n80\nwritable\n" {
		t.Fatalf("-w and --sysctl under --userns auto: %q", out)
	}

	// It survives a restart with the same mapping, and its range is free
	// again once it is removed.
	must(t, "restart", "-t", "1", a)
	if h, _ := uidMap(t, a); h != host {
		t.Fatalf("after restart the mapping moved from %d to %d", host, h)
	}
	must(t, "rm", "-f", a)
	c := runDetached(t, "--userns", "auto", "busybox:1.35", "sleep", "300")
	if h, _ := uidMap(t, c); h != host {
		t.Fatalf("the removed container's range %d was not reused (got %d)", host, h)
	}
}

func TestUsernsBadInput(t *testing.T) {
	before := must(t, "ps", "-aq")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--userns", "remap"}, "invalid --userns mode"},
		{[]string{"--userns", "auto:size=0"}, "size must be"},
		{[]string{"--userns", "auto:uidmapping=0:1:1"}, "the only auto option"},
		{[]string{"--userns", "auto", "--privileged"}, "--privileged"},
		{[]string{"--userns", "auto", "--network", "host"}, "--network host"},
		{[]string{"--userns", "auto", "--pid", "host"}, "--pid host"},
	} {
		r := berth(t, append(append([]string{"run", "--rm"}, tc.args...), "busybox:1.35", "true")...)
		if r.code != 125 || !strings.Contains(r.err, tc.want) {
			t.Errorf("run %v: exit %d, stderr %q; want 125 and %q", tc.args, r.code, r.err, tc.want)
		}
	}
	if after := must(t, "ps", "-aq"); after != before {
		t.Errorf("refused runs left containers: before %q, after %q", before, after)
	}

	// A run directory the remapped root cannot reach is named, at create.
	hidden := t.TempDir() // 0700
	rr, rd := filepath.Join(hidden, "root"), filepath.Join(hidden, "run")
	if out, err := exec.Command(berthBin, "--root", rr, "--run-dir", rd, "pull", "-q", "oci:"+filepath.Join(shared, "oci")+":busybox:1.35").CombinedOutput(); err != nil {
		t.Fatalf("pull: %v %s", err, out)
	}
	out, err := exec.Command(berthBin, "--root", rr, "--run-dir", rd, "run", "--rm", "--userns", "auto", "--network", "none", "busybox:1.35", "true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), hidden) || !strings.Contains(string(out), "searchable") {
		t.Errorf("run under a 0700 run dir: %v %q; want an error naming %s", err, out, hidden)
	}
	if out, err := exec.Command(berthBin, "--root", rr, "--run-dir", rd, "ps", "-aq").CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("the refused run left containers: %v %q", err, out)
	}
	exec.Command(berthBin, "--root", rr, "--run-dir", rd, "system", "reset", "--force").Run()
}

// statUID is the owner of a file as the host sees it.
func statUID(fi os.FileInfo) int {
	if fi == nil {
		return -1
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}
