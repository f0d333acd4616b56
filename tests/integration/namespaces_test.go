package integration

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func hostNS(t *testing.T, name string) string {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestEveryNamespaceIsNew checks that each namespace the config asks for
// differs from the host's.
func TestEveryNamespaceIsNew(t *testing.T) {
	names := []string{"pid", "net", "ipc", "uts", "mnt", "cgroup", "user", "time"}
	script := ""
	for _, n := range names {
		script += "readlink /proc/self/ns/" + n + "; "
	}
	b := newBundle(t, "sh", "-c", script)
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces,
		specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.TimeNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	chownTree(t, b.Dir+"/rootfs", 100000)
	r := b.run("allns")
	if r.Code != 0 {
		t.Fatalf("run: %d %s", r.Code, r.Stderr)
	}
	got := strings.Fields(r.Stdout)
	if len(got) != len(names) {
		t.Fatalf("got %d namespace links, want %d: %q", len(got), len(names), r.Stdout)
	}
	for i, n := range names {
		if got[i] == hostNS(t, n) {
			t.Errorf("%s namespace is the host's (%s)", n, got[i])
		}
	}
}

func TestUserNamespaceMapping(t *testing.T) {
	b := newBundle(t, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map; touch /tmp/x && stat -c %u /tmp/x")
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	b.Spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 1000}}
	b.Spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 1000}}
	b.Spec.Root.Readonly = false
	chownTree(t, b.Dir+"/rootfs", 200000)
	r := b.run("userns")
	if r.Code != 0 {
		t.Fatalf("run: %d %s", r.Code, r.Stderr)
	}
	f := strings.Fields(r.Stdout)
	if len(f) < 6 || f[0] != "0" || f[1] != "0" || f[2] != "0" || f[3] != "200000" || f[4] != "1000" {
		t.Fatalf("inside the user namespace: %q, want root mapped from 200000 (1000 ids)", r.Stdout)
	}
	// A file the container's root made belongs to the unprivileged host id.
	st, err := os.Stat(b.Dir + "/rootfs/tmp/x")
	if err == nil {
		if uid := st.Sys().(interface{}).(*syscallStat).Uid; uid != 200000 {
			t.Errorf("file made by container root has host uid %d, want 200000", uid)
		}
	}
}

func TestTimeNamespaceOffsets(t *testing.T) {
	b := newBundle(t, "cat", "/proc/uptime")
	b.Spec.Linux.Namespaces = append(b.Spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	b.Spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 86400 * 365}}
	r := b.run("timens")
	if r.Code != 0 {
		t.Fatalf("run: %d %s", r.Code, r.Stderr)
	}
	var up float64
	if _, err := sscan(r.Stdout, &up); err != nil {
		t.Fatal(err)
	}
	if up < 86400*365 {
		t.Fatalf("uptime inside %.0fs: the boottime offset of one year was not applied", up)
	}
}

// TestJoinNamespaceByPath: a second container shares the first one's
// network and uts namespaces, given by path.
func TestJoinNamespaceByPath(t *testing.T) {
	a := newBundle(t, "sleep", "1000")
	a.create("ns-a")
	a.mustRunc("start", "ns-a")
	pid := a.state("ns-a").Pid
	want := readlink(t, "/proc/"+itoa(pid)+"/ns/net")

	b := newBundle(t, "sh", "-c", "readlink /proc/self/ns/net; hostname")
	b.Spec.Hostname = ""
	for i, ns := range b.Spec.Linux.Namespaces {
		switch ns.Type {
		case specs.NetworkNamespace:
			b.Spec.Linux.Namespaces[i].Path = "/proc/" + itoa(pid) + "/ns/net"
		case specs.UTSNamespace:
			b.Spec.Linux.Namespaces[i].Path = "/proc/" + itoa(pid) + "/ns/uts"
		}
	}
	r := b.run("ns-b")
	if r.Code != 0 {
		t.Fatalf("run: %d %s", r.Code, r.Stderr)
	}
	f := strings.Fields(r.Stdout)
	if len(f) != 2 || f[0] != want {
		t.Fatalf("second container's net namespace %q, want the first's %s", r.Stdout, want)
	}
	if f[1] != "berth-test" {
		t.Errorf("joined uts namespace shows hostname %q, want the first container's berth-test", f[1])
	}
}

func readlink(t *testing.T, p string) string {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestNoMountNamespace: a config without a mount namespace shares the
// host's (as the spec says for unlisted namespaces); the mounts it makes
// under the rootfs are gone after delete.
func TestNoMountNamespace(t *testing.T) {
	b := newBundle(t, "readlink", "/proc/self/ns/mnt")
	var kept []specs.LinuxNamespace
	for _, ns := range b.Spec.Linux.Namespaces {
		if ns.Type != specs.MountNamespace {
			kept = append(kept, ns)
		}
	}
	b.Spec.Linux.Namespaces = kept
	r := b.run("nomntns")
	if r.Code != 0 {
		t.Fatalf("run: %d %s", r.Code, r.Stderr)
	}
	if got := strings.TrimSpace(r.Stdout); got != hostNS(t, "mnt") {
		t.Errorf("container's mount namespace %s, want the host's %s", got, hostNS(t, "mnt"))
	}
	for _, l := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		if strings.Contains(l, b.Dir) {
			t.Errorf("mount left on the host after delete: %s", l)
		}
	}
}

// TestUserNamespaceHostPaths: a container with its own user namespace
// still mounts a bind source its root could not reach by path (under a
// directory only host root may search, as the engine's own files are),
// and exec joins a network namespace the host owns (a path in the
// config, as an engine pins it) before the container's user namespace.
func TestUserNamespaceHostPaths(t *testing.T) {
	hidden := t.TempDir()
	if err := os.Chmod(hidden, 0o700); err != nil { // host root's only
		t.Fatal(err)
	}
	src := hidden + "/shared"
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src+"/hello", []byte("through the fd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A network namespace of the host's user namespace, held by a
	// process this test starts (and kills).
	holder := exec.Command("sleep", "1000")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	netns := "/proc/" + itoa(holder.Process.Pid) + "/ns/net"
	want, err := os.Readlink(netns)
	if err != nil {
		t.Fatal(err)
	}
	b := startSleeper(t, "usernspaths", func(b *bundle) {
		s := b.Spec
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				s.Linux.Namespaces[i].Path = netns
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/shared", Type: "bind", Source: src, Options: []string{"rbind", "ro"}})
		chownTree(t, b.Dir+"/rootfs", 300000)
		os.Chmod(b.Dir, 0o755)
	})
	out := b.mustRunc("exec", "usernspaths", "sh", "-c", "cat /shared/hello; readlink /proc/self/ns/net; cat /proc/self/uid_map")
	f := strings.Fields(out)
	if len(f) != 7 || f[0]+" "+f[1]+" "+f[2] != "through the fd" || f[3] != want || f[4] != "0" || f[5] != "300000" {
		t.Fatalf("exec in the container: %q; want the bound file, network namespace %s and root mapped from 300000", out, want)
	}
	// The bind is read-only for the container's root.
	if r := b.runc("exec", "usernspaths", "touch", "/shared/x"); r.Code == 0 {
		t.Error("the read-only bind mount was writable")
	}
}
