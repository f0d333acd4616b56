package rootfs

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A Docker-like default container: the mounts, devices, masked and
// read-only paths a user sees in `docker run`.
func TestDefaultContainer(t *testing.T) {
	root := newRootfs(t)
	spec := newSpec(defaultMounts()...)
	spec.Linux.MaskedPaths = []string{"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/scsi", "/sys/firmware", "/proc/berth-missing"}
	spec.Linux.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", "/proc/berth-missing"}
	res := runScenario(t, scenario{
		Config: Config{Rootfs: root, Spec: spec},
		Commands: []string{
			/*0*/ "cat /proc/self/mountinfo",
			/*1*/ "pwd",
			/*2*/ "ls -A /dev",
			/*3*/ "wc -c < " + maskedProcFile(t),
			/*4*/ "v=$(cat /proc/sys/kernel/printk_ratelimit) && echo $v > /proc/sys/kernel/printk_ratelimit",
			/*5*/ "echo hello > /dev/null && head -c 5 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c",
			/*6*/ "for f in /dev/ptmx /dev/fd /dev/stdin /dev/stdout /dev/stderr; do readlink $f; done",
			/*7*/ "stat -c '%a %F %t:%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty",
			/*8*/ "stat -c %a /dev/shm /dev",
			/*9*/ "touch /sys/berth 2>&1",
			/*10*/ "ls -A /sys/firmware | wc -l; touch /sys/firmware/x",
			/*11*/ "cat /etc/hostname; echo written > /root/file && cat /root/file",
			/*12*/ "ls /proc/1/ && cat /proc/1/cmdline | tr '\\0' ' '",
		},
	}, nsOpts{})
	mustSucceed(t, res)
	mi := res.out(0)

	if got := res.out(1); got != "/" {
		t.Errorf("cwd after Finalize = %q, want /", got)
	}
	wantOpts(t, topMount(t, mi, "/proc"), "rw", "nosuid", "nodev", "noexec")
	if m := topMount(t, mi, "/proc"); m.FSType != "proc" {
		t.Errorf("/proc is %s, want proc", m.FSType)
	}
	dev := topMount(t, mi, "/dev")
	if dev.FSType != "tmpfs" || !hasOpts(dev.SuperOptions, "size=65536k", "mode=755") {
		t.Errorf("/dev = %s %q, want tmpfs with size=65536k,mode=755", dev.FSType, dev.SuperOptions)
	}
	wantOpts(t, dev, "nosuid")
	if strings.Contains(dev.Options, "relatime") {
		t.Errorf("/dev options %q: strictatime not applied", dev.Options)
	}
	pts := topMount(t, mi, "/dev/pts")
	if pts.FSType != "devpts" || !hasOpts(pts.SuperOptions, "gid=5", "mode=620", "ptmxmode=666") {
		t.Errorf("/dev/pts = %s %q, want devpts gid=5,mode=620,ptmxmode=666", pts.FSType, pts.SuperOptions)
	}
	wantOpts(t, pts, "nosuid", "noexec")
	sys := topMount(t, mi, "/sys")
	if sys.FSType != "sysfs" {
		t.Errorf("/sys is %s", sys.FSType)
	}
	wantOpts(t, sys, "ro", "nosuid", "nodev", "noexec")
	if m := topMount(t, mi, "/dev/mqueue"); m.FSType != "mqueue" {
		t.Errorf("/dev/mqueue is %s", m.FSType)
	}
	shm := topMount(t, mi, "/dev/shm")
	if shm.FSType != "tmpfs" || !hasOpts(shm.SuperOptions, "size=65536k") {
		t.Errorf("/dev/shm = %s %q", shm.FSType, shm.SuperOptions)
	}

	// /dev holds only what the runtime put there: no host devices.
	gotDev := strings.Fields(res.out(2))
	wantDev := []string{"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		wantDev = append(wantDev, "core")
	}
	sort.Strings(gotDev)
	sort.Strings(wantDev)
	if strings.Join(gotDev, " ") != strings.Join(wantDev, " ") {
		t.Errorf("/dev has %v, want exactly %v", gotDev, wantDev)
	}

	// Masked and read-only paths.
	if got := res.out(3); got != "0" {
		t.Errorf("masked %s reads %s bytes, want 0", maskedProcFile(t), got)
	}
	if o := res.Outputs[4]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("write to read-only /proc/sys: exit %d %q, want EROFS", o.Exit, o.Out)
	}
	masked := topMount(t, mi, maskedProcFile(t))
	if masked.FSType != "tmpfs" || masked.Root != "/null" {
		t.Errorf("%s masked by %s of %s, want /dev/null from the container's /dev tmpfs", masked.Mountpoint, masked.Root, masked.FSType)
	}
	wantOpts(t, topMount(t, mi, "/proc/sys"), "ro")
	if _, err := os.Stat("/proc/sysrq-trigger"); err == nil {
		wantOpts(t, topMount(t, mi, "/proc/sysrq-trigger"), "ro")
	}
	if _, err := os.Stat("/sys/firmware"); err == nil {
		fw := topMount(t, mi, "/sys/firmware")
		if fw.FSType != "tmpfs" {
			t.Errorf("masked directory /sys/firmware has a %s mount, want tmpfs", fw.FSType)
		}
		wantOpts(t, fw, "ro")
		if o := res.Outputs[10]; !strings.HasPrefix(o.Out, "0\n") || !strings.Contains(o.Out, "Read-only file system") {
			t.Errorf("masked /sys/firmware: %q, want empty and read-only", o.Out)
		}
	}

	// Devices work and have the spec's modes.
	if got := strings.Fields(res.out(5)); len(got) != 2 || got[0] != "5" || got[1] != "3" {
		t.Errorf("/dev/null,/dev/zero,/dev/urandom use: %q", res.out(5))
	}
	if got := strings.Fields(res.out(6)); strings.Join(got, " ") != "pts/ptmx /proc/self/fd /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2" {
		t.Errorf("/dev symlinks: %q", got)
	}
	wantNodes := "666 character special file 1:3\n666 character special file 1:5\n666 character special file 1:7\n" +
		"666 character special file 1:8\n666 character special file 1:9\n666 character special file 5:0"
	if got := res.out(7); got != wantNodes {
		t.Errorf("device nodes:\n%s\nwant\n%s", got, wantNodes)
	}
	if got := res.out(8); got != "1777\n755" {
		t.Errorf("modes of /dev/shm and /dev: %q, want 1777 and 755", got)
	}
	if o := res.Outputs[9]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("touch in ro /sys: exit %d %q", o.Exit, o.Out)
	}
	if got := res.out(11); got != "image\nwritten" {
		t.Errorf("rootfs contents: %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "root", "file")); err != nil {
		t.Errorf("write to / did not land in the bundle rootfs: %v", err)
	}
	// PID 1 of the new pid namespace is the child (our test binary).
	if o := res.Outputs[12]; o.Exit != 0 || !strings.Contains(o.Out, filepath.Base(os.Args[0])) {
		t.Errorf("/proc is not the container's pid namespace: %q", o.Out)
	}
}

// Bind mounts: read-only, read-write, file, flags, recursive read-only,
// propagation and a relative destination.
func TestBindMounts(t *testing.T) {
	root := newRootfs(t)
	src := t.TempDir()
	for _, d := range []string{"ro", "rw", "flags", "rec/sub", "recro/sub", "prop"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(src, "file.txt")
	if err := os.WriteFile(file, []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := newSpec(append(defaultMounts(),
		specs.Mount{Destination: "/data/ro", Type: "bind", Source: filepath.Join(src, "ro"), Options: []string{"rbind", "ro", "rprivate"}},
		specs.Mount{Destination: "/data/rw", Type: "none", Source: filepath.Join(src, "rw"), Options: []string{"bind", "rw"}},
		specs.Mount{Destination: "/etc/berth.txt", Type: "bind", Source: file, Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/data/flags", Source: filepath.Join(src, "flags"), Options: []string{"bind", "nosuid", "nodev", "noexec", "noatime", "nosymfollow"}},
		// Plain ro on an rbind only affects the top mount...
		specs.Mount{Destination: "/data/rec", Source: filepath.Join(src, "rec"), Options: []string{"rbind", "ro"}},
		// ...rro makes the whole tree read-only.
		specs.Mount{Destination: "/data/recro", Source: filepath.Join(src, "recro"), Options: []string{"rbind", "rro", "rnosuid"}},
		specs.Mount{Destination: "/data/shared", Type: "bind", Source: filepath.Join(src, "prop"), Options: []string{"rbind", "rshared"}},
		specs.Mount{Destination: "/data/unbindable", Type: "bind", Source: filepath.Join(src, "prop"), Options: []string{"bind", "unbindable"}},
		specs.Mount{Destination: "relative/dir", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
	)...)
	res := runScenario(t, scenario{
		Config:    Config{Rootfs: root, Spec: spec},
		PreMounts: []string{filepath.Join(src, "rec", "sub"), filepath.Join(src, "recro", "sub")},
		Commands: []string{
			/*0*/ "cat /proc/self/mountinfo",
			/*1*/ "touch /data/ro/x",
			/*2*/ "echo inside > /data/rw/new && cat /data/rw/new",
			/*3*/ "cat /etc/berth.txt; echo x >> /etc/berth.txt",
			/*4*/ "touch /data/rec/x; touch /data/rec/sub/x && echo sub-writable",
			/*5*/ "touch /data/recro/x; touch /data/recro/sub/x",
			/*6*/ "ls -d /relative/dir",
		},
	}, nsOpts{})
	mustSucceed(t, res)
	mi := res.out(0)

	if o := res.Outputs[1]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("write to ro bind: exit %d %q, want EROFS", o.Exit, o.Out)
	}
	wantOpts(t, topMount(t, mi, "/data/ro"), "ro")
	if got := res.out(2); got != "inside" {
		t.Errorf("rw bind: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(src, "rw", "new")); err != nil || string(b) != "inside\n" {
		t.Errorf("rw bind write not on host: %q %v", b, err)
	}
	if o := res.Outputs[3]; !strings.HasPrefix(o.Out, "from host\n") || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("ro file bind: %q", o.Out)
	}
	wantOpts(t, topMount(t, mi, "/data/flags"), "rw", "nosuid", "nodev", "noexec", "noatime", "nosymfollow")
	rec := res.Outputs[4]
	if !strings.Contains(rec.Out, "Read-only file system") || !strings.Contains(rec.Out, "sub-writable") {
		t.Errorf("rbind,ro: top should be read-only and the submount writable: %q", rec.Out)
	}
	if strings.Count(res.Outputs[5].Out, "Read-only file system") != 2 {
		t.Errorf("rbind,rro: both levels should be read-only: %q", res.Outputs[5].Out)
	}
	wantOpts(t, topMount(t, mi, "/data/recro/sub"), "ro", "nosuid")
	wantOpts(t, topMount(t, mi, "/data/rec/sub"), "rw")
	if m := topMount(t, mi, "/data/shared"); !m.shared() {
		t.Errorf("rshared bind not shared: optional fields %v", m.Optional)
	}
	if m := topMount(t, mi, "/data/ro"); m.shared() {
		t.Errorf("rprivate bind is shared: %v", m.Optional)
	}
	if m := topMount(t, mi, "/data/unbindable"); !contains(m.Optional, "unbindable") {
		t.Errorf("unbindable bind: optional fields %v", m.Optional)
	}
	if m := topMount(t, mi, "/relative/dir"); m.FSType != "tmpfs" {
		t.Errorf("relative destination: %s", m.FSType)
	}
	// Destinations were created inside the rootfs, not on the host.
	if _, err := os.Stat(filepath.Join(root, "etc", "berth.txt")); err != nil {
		t.Errorf("file bind target not created in rootfs: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// tmpfs: size and mode respected, mode of an existing directory kept,
// read-only tmpfs, tmpcopyup.
func TestTmpfs(t *testing.T) {
	root := newRootfs(t)
	if err := os.MkdirAll(filepath.Join(root, "var", "cache", "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "var", "cache"), 0o710); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "var", "cache", "sub", "keep"), []byte("copied\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/keep", filepath.Join(root, "var", "cache", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(root, "var", "cache", "sub", "keep"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	spec := newSpec(append(defaultMounts(),
		specs.Mount{Destination: "/small", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "mode=700", "nodev"}},
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid"}},
		specs.Mount{Destination: "/rotmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "size=64k"}},
		specs.Mount{Destination: "/var/cache", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "size=1m"}},
	)...)
	res := runScenario(t, scenario{
		Config: Config{Rootfs: root, Spec: spec},
		Commands: []string{
			/*0*/ "cat /proc/self/mountinfo",
			/*1*/ "stat -c %a /small /tmp",
			/*2*/ "df -k /small | tail -n 1 | awk '{print $2}'",
			/*3*/ "dd if=/dev/zero of=/small/big bs=1024 count=2048 2>&1",
			/*4*/ "touch /rotmp/x",
			/*5*/ "stat -c '%a' /var/cache && cat /var/cache/sub/keep && stat -c '%a %u %g' /var/cache/sub/keep && readlink /var/cache/link && echo new > /var/cache/new",
		},
	}, nsOpts{})
	mustSucceed(t, res)
	mi := res.out(0)
	small := topMount(t, mi, "/small")
	if !hasOpts(small.SuperOptions, "size=1024k", "mode=700") {
		t.Errorf("/small super options %q, want size=1024k,mode=700", small.SuperOptions)
	}
	wantOpts(t, small, "nodev")
	if got := res.out(1); got != "700\n1777" {
		t.Errorf("modes %q: want 700 from mode= and 1777 kept from the image's /tmp", got)
	}
	if got := res.out(2); got != "1024" {
		t.Errorf("df of size=1m tmpfs: %q 1K-blocks", got)
	}
	if o := res.Outputs[3]; o.Exit == 0 || !strings.Contains(o.Out, "No space left") {
		t.Errorf("writing 2 MiB into a 1 MiB tmpfs: exit %d %q", o.Exit, o.Out)
	}
	wantOpts(t, topMount(t, mi, "/rotmp"), "ro")
	if o := res.Outputs[4]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("ro tmpfs: exit %d %q", o.Exit, o.Out)
	}
	if o := res.Outputs[5]; o.Exit != 0 || o.Out != "710\ncopied\n640 1234 5678\nsub/keep\n" {
		t.Errorf("tmpcopyup: exit %d %q", o.Exit, o.Out)
	}
	if m := topMount(t, mi, "/var/cache"); m.FSType != "tmpfs" {
		t.Errorf("/var/cache is %s", m.FSType)
	}
	if _, err := os.Stat(filepath.Join(root, "var", "cache", "new")); err == nil {
		t.Error("write into the copy-up tmpfs reached the image")
	}
}

// A symlink in the image pointing out of it must not carry a mount, a
// directory or a file onto the host.
func TestSymlinkEscape(t *testing.T) {
	root := newRootfs(t)
	for _, p := range []string{"/etc/berth-escape-dir", "/etc/berth-escape-file", "/etc/berth-escape-dev"} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists on the host before the test", p)
		}
	}
	t.Cleanup(func() {
		// Only reached with something already wrong: undo an escape.
		for _, p := range []string{"/etc/berth-escape-dir", "/etc/berth-escape-file", "/etc/berth-escape-dev"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s was created on the host; removing it", p)
				os.RemoveAll(p)
			}
		}
	})
	if err := os.Symlink("/etc", filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../../etc", filepath.Join(root, "evil2")); err != nil {
		t.Fatal(err)
	}
	// A dangling absolute link as the final component.
	if err := os.Symlink("/etc/berth-escape-file", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(hostFile, []byte("bound\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := newSpec(append(defaultMounts(),
		specs.Mount{Destination: "/evil/berth-escape-dir", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/evil2/berth-escape-dir/x", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/dangling", Type: "bind", Source: hostFile, Options: []string{"bind"}},
	)...)
	spec.Linux.Devices = []specs.LinuxDevice{{Path: "/evil/berth-escape-dev", Type: "c", Major: 1, Minor: 3}}
	res := runScenario(t, scenario{
		Config:   Config{Rootfs: root, Spec: spec},
		Commands: []string{"cat /proc/self/mountinfo", "cat /etc/berth-escape-file", "stat -c %t:%T /etc/berth-escape-dev"},
	}, nsOpts{})
	mustSucceed(t, res)
	mi := res.out(0)
	for _, p := range []string{"/etc/berth-escape-dir", "/etc/berth-escape-file", "/etc/berth-escape-dev"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was created on the host through a symlink in the image", p)
		}
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s not created inside the rootfs: %v", p, err)
		}
	}
	if m := topMount(t, mi, "/etc/berth-escape-dir"); m.FSType != "tmpfs" {
		t.Errorf("mount followed the symlink to %s", m.FSType)
	}
	topMount(t, mi, "/etc/berth-escape-dir/x")
	if got := res.out(1); got != "bound" {
		t.Errorf("bind on dangling link: %q", got)
	}
	if got := res.out(2); got != "1:3" {
		t.Errorf("device through symlink: %q", got)
	}
}

// /proc or /sys being a symlink in the image is refused, and so is a
// mount hiding something inside /proc.
func TestProcSysRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		mount specs.Mount
		want  []string
	}{
		{
			name: "proc symlink",
			setup: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "proc"))
				if err := os.Symlink("/tmp", filepath.Join(root, "proc")); err != nil {
					t.Fatal(err)
				}
			},
			mount: specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"},
			want:  []string{"mount proc (proc) on /proc", "symlink"},
		},
		{
			name: "sys symlink",
			setup: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "sys"))
				if err := os.Symlink("etc", filepath.Join(root, "sys")); err != nil {
					t.Fatal(err)
				}
			},
			mount: specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs"},
			want:  []string{"mount sysfs (sysfs) on /sys", "symlink"},
		},
		{
			name: "bind under a /sys symlink",
			setup: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "sys"))
				if err := os.Symlink("/etc", filepath.Join(root, "sys")); err != nil {
					t.Fatal(err)
				}
			},
			mount: specs.Mount{Destination: "/sys/fs/cgroup", Type: "tmpfs", Source: "tmpfs"},
			want:  []string{"on /sys/fs/cgroup", "symlink"},
		},
		{
			name: "proc on a file",
			setup: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "proc"))
				os.WriteFile(filepath.Join(root, "proc"), nil, 0o644)
			},
			mount: specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"},
			want:  []string{"not a directory"},
		},
		{
			name:  "tmpfs over /proc",
			mount: specs.Mount{Destination: "/proc", Type: "tmpfs", Source: "tmpfs"},
			want:  []string{"only a procfs may be mounted on /proc"},
		},
		{
			name:  "inside /proc",
			mount: specs.Mount{Destination: "/proc/sys", Type: "tmpfs", Source: "tmpfs"},
			want:  []string{"inside /proc"},
		},
		{
			name:  "missing bind source",
			mount: specs.Mount{Destination: "/x", Type: "bind", Source: "/berth-no-such-dir", Options: []string{"rbind"}},
			want:  []string{"mount /berth-no-such-dir (bind) on /x", "no such file"},
		},
		{
			name:  "bad type",
			mount: specs.Mount{Destination: "/x", Type: "berthfs", Source: "x"},
			want:  []string{"mount x (berthfs) on /x", "no such device"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootfs(t)
			if tc.setup != nil {
				tc.setup(t, root)
			}
			mounts := []specs.Mount{tc.mount}
			if tc.mount.Destination != "/proc" {
				mounts = append([]specs.Mount{defaultMounts()[0]}, tc.mount)
			}
			res := runScenario(t, scenario{Config: Config{Rootfs: root, Spec: newSpec(mounts...)}}, nsOpts{})
			if res.Stage != "prepare" {
				t.Fatalf("stage %q (%s), want a Prepare error", res.Stage, res.Err)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Err, w) {
					t.Errorf("error %q does not contain %q", res.Err, w)
				}
			}
			t.Log(res.Err)
		})
	}
	if _, err := os.Stat("/tmp/self"); err == nil {
		t.Log("note: /tmp/self exists on the host (not created by this test)")
	}
}

// --no-pivot: MS_MOVE + chroot, with a read-only root.
func TestNoPivotReadonlyRoot(t *testing.T) {
	root := newRootfs(t)
	spec := newSpec(append(defaultMounts(),
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
	)...)
	spec.Root.Readonly = true
	spec.Linux.MaskedPaths = []string{maskedProcFile(t)}
	res := runScenario(t, scenario{
		Config: Config{Rootfs: root, Spec: spec, NoPivot: true},
		Commands: []string{
			"cat /proc/self/mountinfo",
			"pwd; ls /; cat /etc/hostname",
			"touch /berth-x",
			"echo ok > /tmp/x && cat /tmp/x",
			"wc -c < " + maskedProcFile(t),
		},
	}, nsOpts{})
	mustSucceed(t, res)
	mi := res.out(0)
	wantOpts(t, topMount(t, mi, "/"), "ro")
	if got := res.out(1); !strings.HasPrefix(got, "/\n") || !strings.Contains(got, "busybox") && !strings.Contains(got, "bin") || !strings.HasSuffix(got, "image") {
		t.Errorf("inside the chroot: %q", got)
	}
	if o := res.Outputs[2]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("write to read-only root: exit %d %q", o.Exit, o.Out)
	}
	if got := res.out(3); got != "ok" {
		t.Errorf("tmpfs under read-only root: %q", got)
	}
	if got := res.out(4); got != "0" {
		t.Errorf("masked %s: %q", maskedProcFile(t), got)
	}
	if _, err := os.Stat(filepath.Join(root, "berth-x")); err == nil {
		t.Error("file created in the read-only root")
	}
}

// Device nodes from the spec, and devices bind-mounted from the host as in
// a user namespace.
func TestDevices(t *testing.T) {
	t.Run("mknod", func(t *testing.T) {
		root := newRootfs(t)
		spec := newSpec(defaultMounts()...)
		mode := os.FileMode(0o640)
		uid, gid := uint32(1000), uint32(1001)
		spec.Linux.Devices = []specs.LinuxDevice{
			{Path: "/dev/berth-mem", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: &uid, GID: &gid},
			{Path: "/dev/berth/fifo", Type: "p"},
			{Path: "/dev/berth-blk", Type: "b", Major: 7, Minor: 200},
			// Overrides the default /dev/null's mode.
			{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &mode},
		}
		res := runScenario(t, scenario{
			Config:   Config{Rootfs: root, Spec: spec},
			Commands: []string{"stat -c '%a %u %g %F %t:%T' /dev/berth-mem /dev/berth/fifo /dev/berth-blk /dev/null"},
		}, nsOpts{})
		mustSucceed(t, res)
		want := "640 1000 1001 character special file 1:3\n666 0 0 fifo 0:0\n666 0 0 block special file 7:c8\n640 0 0 character special file 1:3"
		if got := res.out(0); got != want {
			t.Errorf("devices:\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("dev is a bind mount", func(t *testing.T) {
		root := newRootfs(t)
		hostDev := t.TempDir()
		spec := newSpec(defaultMounts()[0], specs.Mount{Destination: "/dev", Type: "bind", Source: hostDev, Options: []string{"rbind"}})
		res := runScenario(t, scenario{Config: Config{Rootfs: root, Spec: spec}, Commands: []string{"ls -A /dev | wc -l"}}, nsOpts{})
		mustSucceed(t, res)
		if got := res.out(0); got != "0" {
			t.Errorf("/dev bound from the host got %s entries: the runtime must leave it alone", got)
		}
		if ents, _ := os.ReadDir(hostDev); len(ents) != 0 {
			t.Errorf("devices or links created in the host directory bound on /dev: %v", ents)
		}
	})
	t.Run("bind from host", func(t *testing.T) {
		root := newRootfs(t)
		spec := newSpec(defaultMounts()...)
		res := runScenario(t, scenario{
			Config: Config{Rootfs: root, Spec: spec, UserNS: true},
			Commands: []string{
				"cat /proc/self/mountinfo",
				"echo x > /dev/null && head -c 4 /dev/zero | wc -c && stat -c '%F %t:%T' /dev/null /dev/tty",
			},
		}, nsOpts{})
		mustSucceed(t, res)
		mi := res.out(0)
		for _, d := range []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"} {
			if m := topMount(t, mi, d); filepath.Base(m.Root) != filepath.Base(d) || m.FSType == "tmpfs" {
				t.Errorf("%s is a bind of %s on %s, want the host's %s", d, m.Root, m.FSType, d)
			}
		}
		if got := res.out(1); got != "4\ncharacter special file 1:3\ncharacter special file 5:0" {
			t.Errorf("bound devices: %q", got)
		}
	})
}

// A real user namespace: mknod is refused (devices are bound), sysfs falls
// back to a bind of /sys, and a read-only bind of a mount whose nosuid,
// nodev, noexec and noatime the kernel locked still works.
func TestUserNamespace(t *testing.T) {
	root := newRootfs(t)
	locked := t.TempDir()
	lockedMount(t, locked)
	spec := newSpec(defaultMounts()...)
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/locked", Type: "bind", Source: locked, Options: []string{"rbind", "ro"}},
	)
	spec.Root.Readonly = true
	spec.Linux.MaskedPaths = []string{maskedProcFile(t)}
	spec.Linux.ReadonlyPaths = []string{"/proc/sys"}
	res := runScenario(t, scenario{
		Config: Config{Rootfs: root, Spec: spec, UserNS: true},
		Commands: []string{
			"cat /proc/self/mountinfo",
			"touch /locked/x",
			"echo x > /dev/null && wc -c < " + maskedProcFile(t),
			"ls /sys/kernel >/dev/null && echo sys-ok",
			"echo $(cat /sys/fs/cgroup/pids/cgroup.clone_children) > /sys/fs/cgroup/pids/cgroup.clone_children",
			"touch /berth-x",
		},
	}, nsOpts{user: true, ipc: true})
	mustSucceed(t, res)
	mi := res.out(0)
	wantOpts(t, topMount(t, mi, "/locked"), "ro", "nosuid", "nodev", "noexec", "noatime")
	if o := res.Outputs[1]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("ro bind of locked mount: exit %d %q", o.Exit, o.Out)
	}
	if got := res.out(2); got != "0" {
		t.Errorf("/dev/null and masked %s in user ns: %q", maskedProcFile(t), got)
	}
	if got := res.out(3); got != "sys-ok" {
		t.Errorf("/sys in user ns: %q", got)
	}
	wantOpts(t, topMount(t, mi, "/sys"), "ro")
	// sysfs was refused (no network namespace of its own), so /sys is the
	// host's, read-only all the way down.
	if m := topMount(t, mi, "/sys"); m.FSType != "sysfs" || !hasOpts(m.Options, "ro") {
		t.Errorf("/sys = %s %q", m.FSType, m.Options)
	}
	for _, m := range mountsUnderIn(t, mi, "/sys/") {
		wantOpts(t, m, "ro")
	}
	if o := res.Outputs[4]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("write below the host /sys bind: exit %d %q", o.Exit, o.Out)
	}
	if o := res.Outputs[5]; o.Exit == 0 || !strings.Contains(o.Out, "Read-only file system") {
		t.Errorf("read-only root in user ns: exit %d %q", o.Exit, o.Out)
	}

	// Asking to clear a locked flag is refused with a clear error.
	root2 := newRootfs(t)
	spec2 := newSpec(append(defaultMounts(),
		specs.Mount{Destination: "/locked", Type: "bind", Source: locked, Options: []string{"rbind", "ro", "suid"}})...)
	res = runScenario(t, scenario{Config: Config{Rootfs: root2, Spec: spec2, UserNS: true}}, nsOpts{user: true, ipc: true})
	if res.Stage != "prepare" || !strings.Contains(res.Err, "nosuid") || !strings.Contains(res.Err, "locked") {
		t.Errorf("clearing locked nosuid: stage %q err %q", res.Stage, res.Err)
	}
}

// mountsUnderIn returns the mounts whose mount point starts with prefix.
func mountsUnderIn(t *testing.T, mountinfo, prefix string) []mountInfo {
	t.Helper()
	ms, err := parseMountInfo(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	var out []mountInfo
	for _, m := range ms {
		if strings.HasPrefix(m.Mountpoint, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// rootfsPropagation decides the propagation of the container's "/".
func TestRootfsPropagation(t *testing.T) {
	for _, tc := range []struct {
		prop   string
		shared bool
	}{{"", false}, {"rshared", true}, {"shared", true}, {"rprivate", false}, {"rslave", false}} {
		t.Run("propagation="+tc.prop, func(t *testing.T) {
			root := newRootfs(t)
			spec := newSpec(defaultMounts()...)
			spec.Linux.RootfsPropagation = tc.prop
			res := runScenario(t, scenario{Config: Config{Rootfs: root, Spec: spec}, Commands: []string{"cat /proc/self/mountinfo"}}, nsOpts{})
			mustSucceed(t, res)
			if m := topMount(t, res.out(0), "/"); m.shared() != tc.shared {
				t.Errorf("/ optional fields %v, want shared=%v", m.Optional, tc.shared)
			}
		})
	}
	root := newRootfs(t)
	spec := newSpec(defaultMounts()...)
	spec.Linux.RootfsPropagation = "rbind"
	res := runScenario(t, scenario{Config: Config{Rootfs: root, Spec: spec}}, nsOpts{})
	if res.Stage != "prepare" || !strings.Contains(res.Err, `"rbind"`) {
		t.Errorf("bad rootfsPropagation: stage %q err %q", res.Stage, res.Err)
	}
}

// lockedMount mounts a nosuid,nodev,noexec,noatime tmpfs on dir in the
// host namespace for the duration of the test: copied into a user
// namespace, those flags are locked.
func lockedMount(t *testing.T, dir string) {
	t.Helper()
	if err := mountTmpfs(dir); err != nil {
		t.Fatalf("mount test tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unmount(dir); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// Overlay with its options passed as data.
func TestOverlay(t *testing.T) {
	root := newRootfs(t)
	base := t.TempDir()
	for _, d := range []string{"lower", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "lower", "a"), []byte("lower\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := newSpec(append(defaultMounts(), specs.Mount{
		Destination: "/merged", Type: "overlay", Source: "overlay",
		Options: []string{"lowerdir=" + filepath.Join(base, "lower"), "upperdir=" + filepath.Join(base, "upper"), "workdir=" + filepath.Join(base, "work"), "nodev"},
	})...)
	res := runScenario(t, scenario{
		Config:   Config{Rootfs: root, Spec: spec},
		Commands: []string{"cat /proc/self/mountinfo", "cat /merged/a && echo upper > /merged/b"},
	}, nsOpts{})
	mustSucceed(t, res)
	m := topMount(t, res.out(0), "/merged")
	if m.FSType != "overlay" {
		t.Errorf("/merged is %s", m.FSType)
	}
	wantOpts(t, m, "nodev")
	if got := res.out(1); got != "lower" {
		t.Errorf("overlay read: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(base, "upper", "b")); err != nil || string(b) != "upper\n" {
		t.Errorf("overlay write not in upperdir: %q %v", b, err)
	}
}

// cgroup v1: a tmpfs with one read-only bind per hierarchy.
func TestCgroupV1(t *testing.T) {
	mounts, err := readMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	if !hostHasCgroupV1(mounts) {
		t.Skip("host has no cgroup v1 hierarchies (pure cgroup v2): covered by TestCgroupV2")
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	paths := cgroupPathsFromProc(string(own), mounts)
	var mem string
	for k, v := range paths {
		if containsPart(k, "memory") {
			mem = v
		}
	}
	if mem == "" {
		t.Skip("no memory cgroup v1 hierarchy on this host")
	}
	cgMount := specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime"}}
	for _, tc := range []struct {
		name  string
		paths map[string]string
		opts  []string
		ro    bool
	}{
		{"explicit paths", map[string]string{"memory": mem, "name=systemd": filepath.Join("/sys/fs/cgroup/systemd")}, nil, true},
		{"from /proc/self/cgroup", nil, nil, true},
		{"rw", map[string]string{"memory": mem}, []string{"rw"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootfs(t)
			m := cgMount
			m.Options = append(append([]string{}, m.Options...), tc.opts...)
			spec := newSpec(append(defaultMounts(), m)...)
			res := runScenario(t, scenario{
				Config: Config{Rootfs: root, Spec: spec, CgroupPaths: tc.paths},
				Commands: []string{
					"cat /proc/self/mountinfo",
					"ls /sys/fs/cgroup",
					"cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
					"echo $(cat /sys/fs/cgroup/memory/cgroup.clone_children) > /sys/fs/cgroup/memory/cgroup.clone_children",
				},
			}, nsOpts{})
			mustSucceed(t, res)
			mi := res.out(0)
			if m := topMount(t, mi, "/sys/fs/cgroup"); m.FSType != "tmpfs" {
				t.Errorf("/sys/fs/cgroup is %s, want tmpfs", m.FSType)
			}
			mm := topMount(t, mi, "/sys/fs/cgroup/memory")
			if mm.FSType != "cgroup" || !hasOpts(mm.SuperOptions, "memory") {
				t.Errorf("/sys/fs/cgroup/memory = %s %q", mm.FSType, mm.SuperOptions)
			}
			wantOpts(t, mm, "nosuid", "nodev", "noexec")
			if want := strings.TrimPrefix(mem, "/sys/fs/cgroup/memory"); mm.Root != want && !(want == "" && mm.Root == "/") {
				t.Errorf("memory bind root %q, want the container's cgroup %q", mm.Root, want)
			}
			if _, err := parseUint(res.out(2)); err != nil {
				t.Errorf("memory.limit_in_bytes: %q", res.out(2))
			}
			w := res.Outputs[3]
			if tc.ro {
				wantOpts(t, mm, "ro")
				if w.Exit == 0 || !strings.Contains(w.Out, "Read-only file system") {
					t.Errorf("write to ro cgroup: exit %d %q", w.Exit, w.Out)
				}
			} else {
				wantOpts(t, mm, "rw")
				if w.Exit != 0 {
					t.Errorf("write to rw cgroup: exit %d %q", w.Exit, w.Out)
				}
			}
			if tc.paths == nil {
				// Every v1 hierarchy of the host, named like the host's.
				for _, hm := range mounts {
					if hm.FSType == "cgroup" && filepath.Dir(hm.Mountpoint) == "/sys/fs/cgroup" && !strings.Contains(res.out(1), filepath.Base(hm.Mountpoint)) {
						t.Errorf("hierarchy %s missing from %q", filepath.Base(hm.Mountpoint), res.out(1))
					}
				}
			}
		})
	}
}

// cgroup v2: a fresh cgroup2 in a cgroup namespace, else a bind of the
// container's directory.
func TestCgroupV2(t *testing.T) {
	mounts, err := readMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	unified := cgroupPathsFromProc(string(own), mounts)[""]
	if unified == "" {
		t.Skip("no cgroup v2 hierarchy mounted on this host")
	}
	cg := specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}}
	t.Run("cgroupns", func(t *testing.T) {
		root := newRootfs(t)
		res := runScenario(t, scenario{
			Config:   Config{Rootfs: root, Spec: newSpec(append(defaultMounts(), cg)...), CgroupPaths: map[string]string{"": unified}, CgroupNS: true},
			Commands: []string{"cat /proc/self/mountinfo", "cat /sys/fs/cgroup/cgroup.procs"},
		}, nsOpts{cgroup: true})
		mustSucceed(t, res)
		m := topMount(t, res.out(0), "/sys/fs/cgroup")
		if m.FSType != "cgroup2" || m.Root != "/" {
			t.Errorf("/sys/fs/cgroup = %s root %q, want a fresh cgroup2 rooted at the namespace", m.FSType, m.Root)
		}
		wantOpts(t, m, "ro", "nosuid", "nodev", "noexec")
		if strings.TrimSpace(res.out(1)) == "" {
			t.Error("cgroup.procs of the namespace root is empty: the container is not in it")
		}
	})
	t.Run("bind", func(t *testing.T) {
		root := newRootfs(t)
		res := runScenario(t, scenario{
			Config:   Config{Rootfs: root, Spec: newSpec(append(defaultMounts(), cg)...), CgroupPaths: map[string]string{"": unified}},
			Commands: []string{"cat /proc/self/mountinfo", "cat /sys/fs/cgroup/cgroup.procs"},
		}, nsOpts{})
		mustSucceed(t, res)
		m := topMount(t, res.out(0), "/sys/fs/cgroup")
		var unifiedMP string
		if um, ok := mountFor(mounts, unified); ok {
			unifiedMP = um.Mountpoint
		}
		wantRoot := strings.TrimPrefix(unified, unifiedMP)
		if wantRoot == "" {
			wantRoot = "/"
		}
		if m.FSType != "cgroup2" || m.Root != wantRoot {
			t.Errorf("/sys/fs/cgroup = %s root %q, want a bind of %s (root %q)", m.FSType, m.Root, unified, wantRoot)
		}
		wantOpts(t, m, "ro")
	})
}

func parseUint(s string) (uint64, error) {
	var v uint64
	if s == "" {
		return 0, os.ErrInvalid
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, os.ErrInvalid
		}
		v = v*10 + uint64(c-'0')
	}
	return v, nil
}

// maskedProcFile is the /proc file the tests mask and read back: /proc/kcore,
// or /proc/timer_list on kernels built without kcore. It must not be empty
// unmasked.
func maskedProcFile(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/proc/kcore", "/proc/timer_list"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("neither /proc/kcore nor /proc/timer_list exists")
	return ""
}
