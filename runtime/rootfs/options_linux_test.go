package rootfs

import (
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []string
		want MountOptions
	}{
		{
			name: "docker sysfs",
			opts: []string{"nosuid", "noexec", "nodev", "ro"},
			want: MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_RDONLY},
		},
		{
			name: "later rw undoes ro",
			opts: []string{"ro", "rw"},
			want: MountOptions{Cleared: unix.MS_RDONLY},
		},
		{
			name: "later ro undoes rw",
			opts: []string{"rw", "ro"},
			want: MountOptions{Flags: unix.MS_RDONLY},
		},
		{
			name: "docker bind volume",
			opts: []string{"rbind", "ro", "rprivate"},
			want: MountOptions{
				Flags:       unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY,
				Propagation: []uintptr{unix.MS_PRIVATE | unix.MS_REC},
			},
		},
		{
			name: "propagation kept in order",
			opts: []string{"bind", "shared", "rslave", "unbindable", "runbindable", "private", "rshared", "slave", "rprivate"},
			want: MountOptions{
				Flags: unix.MS_BIND,
				Propagation: []uintptr{
					unix.MS_SHARED, unix.MS_SLAVE | unix.MS_REC, unix.MS_UNBINDABLE,
					unix.MS_UNBINDABLE | unix.MS_REC, unix.MS_PRIVATE, unix.MS_SHARED | unix.MS_REC,
					unix.MS_SLAVE, unix.MS_PRIVATE | unix.MS_REC,
				},
			},
		},
		{
			name: "tmpfs data",
			opts: []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			want: MountOptions{Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"},
		},
		{
			name: "devpts data",
			opts: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			want: MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		},
		{
			name: "overlay data",
			opts: []string{"lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "index=off"},
			want: MountOptions{Data: "lowerdir=/a:/b,upperdir=/u,workdir=/w,index=off"},
		},
		{
			name: "clearing options",
			opts: []string{"nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "mand", "nomand"},
			want: MountOptions{Cleared: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_SYNCHRONOUS | unix.MS_MANDLOCK},
		},
		{
			name: "atime family",
			opts: []string{"noatime", "nodiratime", "relatime", "strictatime"},
			want: MountOptions{Flags: unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME},
		},
		{
			name: "atime negations",
			opts: []string{"noatime", "atime", "nodiratime", "diratime", "relatime", "norelatime", "strictatime", "nostrictatime"},
			want: MountOptions{Cleared: unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME},
		},
		{
			name: "misc flags",
			opts: []string{"defaults", "dirsync", "remount", "nosymfollow"},
			want: MountOptions{Flags: unix.MS_DIRSYNC | unix.MS_REMOUNT | unix.MS_NOSYMFOLLOW},
		},
		{
			name: "recursive read-only",
			opts: []string{"rbind", "rro"},
			want: MountOptions{
				Flags:   unix.MS_BIND | unix.MS_REC,
				RecAttr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY},
			},
		},
		{
			name: "recursive set then clear",
			opts: []string{"rro", "rnosuid", "rrw", "rnodev", "rnoexec", "rexec", "rnosymfollow"},
			want: MountOptions{RecAttr: &unix.MountAttr{
				Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOSYMFOLLOW,
				Attr_clr: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOEXEC,
			}},
		},
		{
			name: "recursive clears",
			opts: []string{"rsuid", "rdev", "rdiratime"},
			want: MountOptions{RecAttr: &unix.MountAttr{
				Attr_clr: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NODIRATIME,
			}},
		},
		{
			name: "recursive noatime selects the atime field",
			opts: []string{"rnoatime", "rnodiratime"},
			want: MountOptions{RecAttr: &unix.MountAttr{
				Attr_set: unix.MOUNT_ATTR_NOATIME | unix.MOUNT_ATTR_NODIRATIME,
				Attr_clr: unix.MOUNT_ATTR__ATIME,
			}},
		},
		{
			name: "recursive relatime is the zero value",
			opts: []string{"rstrictatime", "rrelatime"},
			want: MountOptions{RecAttr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RELATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		},
		{
			name: "recursive strictatime",
			opts: []string{"rstrictatime"},
			want: MountOptions{RecAttr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_STRICTATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		},
		{
			name: "ratime undoes rnoatime",
			opts: []string{"rnoatime", "ratime"},
			want: MountOptions{RecAttr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RELATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		},
		{
			name: "rnorelatime means strict",
			opts: []string{"rnorelatime"},
			want: MountOptions{RecAttr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_STRICTATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		},
		{
			name: "rnostrictatime keeps noatime",
			opts: []string{"rnoatime", "rnostrictatime"},
			want: MountOptions{RecAttr: &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		},
		{
			name: "tmpcopyup is an extension, not data",
			opts: []string{"tmpcopyup", "mode=1777"},
			want: MountOptions{CopyUp: true, Data: "mode=1777"},
		},
		{
			name: "unknown options and empty ones",
			opts: []string{"", "context=\"system_u:object_r:x\"", "uid=1000"},
			want: MountOptions{Data: "context=\"system_u:object_r:x\",uid=1000"},
		},
		{
			name: "nothing",
			opts: nil,
			want: MountOptions{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseMountOptions(tc.opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseMountOptions(%q)\n got  %+v (rec %+v)\n want %+v (rec %+v)", tc.opts, got, got.RecAttr, tc.want, tc.want.RecAttr)
			}
		})
	}
}

// Every option of the OCI table is understood: none may leak into the
// filesystem data, where the kernel would reject it.
func TestParseMountOptionsKnowsTheWholeTable(t *testing.T) {
	all := strings.Fields(`defaults ro rw suid nosuid dev nodev exec noexec sync async dirsync
		remount mand nomand atime noatime diratime nodiratime relatime norelatime strictatime
		nostrictatime bind rbind private rprivate shared rshared slave rslave unbindable
		runbindable rro rrw rnosuid rsuid rnodev rdev rnoexec rexec rnodiratime rdiratime
		rrelatime rnorelatime rnoatime ratime rstrictatime rnostrictatime nosymfollow
		rnosymfollow symfollow rsymfollow lazytime nolazytime iversion noiversion silent loud tmpcopyup`)
	for _, o := range all {
		if got := ParseMountOptions([]string{o}); got.Data != "" {
			t.Errorf("option %q ended up as data %q", o, got.Data)
		}
	}
}

func TestParsePropagation(t *testing.T) {
	for in, want := range map[string]uintptr{
		"":            unix.MS_SLAVE | unix.MS_REC,
		"private":     unix.MS_PRIVATE,
		"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
		"shared":      unix.MS_SHARED,
		"rshared":     unix.MS_SHARED | unix.MS_REC,
		"slave":       unix.MS_SLAVE,
		"rslave":      unix.MS_SLAVE | unix.MS_REC,
		"unbindable":  unix.MS_UNBINDABLE,
		"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
	} {
		got, err := ParsePropagation(in)
		if err != nil || got != want {
			t.Errorf("ParsePropagation(%q) = %#x, %v; want %#x", in, got, err, want)
		}
	}
	if _, err := ParsePropagation("rbind"); err == nil || !strings.Contains(err.Error(), "rbind") {
		t.Errorf("ParsePropagation(rbind) error = %v, want one naming the value", err)
	}
}

func TestStatfsToMountFlags(t *testing.T) {
	for _, tc := range []struct {
		st   int64
		want uintptr
	}{
		// ST_RELATIME shares its value with MS_BIND and ST_NOSYMFOLLOW
		// with MS_MOVE: they must be translated, not copied.
		{unix.ST_RELATIME, unix.MS_RELATIME},
		{stNoSymFollow | unix.ST_NOATIME, unix.MS_NOSYMFOLLOW | unix.MS_NOATIME},
		{unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_RELATIME,
			unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME},
		// Neither relatime nor noatime: strictatime, so a remount keeps it.
		{0x20 /* ST_VALID */, unix.MS_STRICTATIME},
		{unix.ST_NODIRATIME | unix.ST_SYNCHRONOUS | unix.ST_MANDLOCK, unix.MS_NODIRATIME | unix.MS_SYNCHRONOUS | unix.MS_MANDLOCK | unix.MS_STRICTATIME},
	} {
		if got := statfsToMountFlags(tc.st); got != tc.want {
			t.Errorf("statfsToMountFlags(%#x) = %s (%#x), want %s (%#x)", tc.st, flagNames(got), got, flagNames(tc.want), tc.want)
		}
	}
}

func TestKeepLockedFlags(t *testing.T) {
	base := uintptr(unix.MS_REMOUNT | unix.MS_BIND)
	cur := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME)
	got, err := keepLockedFlags(base|unix.MS_RDONLY, 0, cur)
	if err != nil {
		t.Fatal(err)
	}
	if want := base | unix.MS_RDONLY | cur; got != want {
		t.Errorf("kept %s, want %s", flagNames(got), flagNames(want))
	}
	if _, err := keepLockedFlags(base, unix.MS_NOSUID, cur); err == nil || !strings.Contains(err.Error(), "nosuid") {
		t.Errorf("clearing a locked nosuid: error = %v, want one naming nosuid", err)
	}
	if _, err := keepLockedFlags(base|unix.MS_RELATIME, 0, cur); err == nil || !strings.Contains(err.Error(), "atime") {
		t.Errorf("changing a locked atime: error = %v, want one about atime", err)
	}
	// Asking for the atime the mount already has is fine.
	if _, err := keepLockedFlags(base|unix.MS_NOATIME, 0, cur); err != nil {
		t.Errorf("same atime: %v", err)
	}
}

func TestParseMountInfo(t *testing.T) {
	const text = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 27 254:0 /srv/a\040b /mnt/with\040space rw,nosuid master:3 shared:7 - ext4 /dev/vda rw
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	ms, err := parseMountInfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Fatalf("got %d mounts, want 4", len(ms))
	}
	m := ms[2]
	if m.ID != 90 || m.Parent != 27 || m.Root != "/srv/a b" || m.Mountpoint != "/mnt/with space" ||
		m.Options != "rw,nosuid" || !reflect.DeepEqual(m.Optional, []string{"master:3", "shared:7"}) ||
		m.FSType != "ext4" || m.Source != "/dev/vda" || !m.shared() {
		t.Errorf("parsed %+v", m)
	}
	if ms[0].shared() || !ms[1].shared() {
		t.Errorf("shared(): /proc %v, / %v", ms[0].shared(), ms[1].shared())
	}
	if got, _ := mountFor(ms, "/sys/fs/cgroup/unified/x"); got.Mountpoint != "/sys/fs/cgroup/unified" {
		t.Errorf("mountFor = %q", got.Mountpoint)
	}
	if got, _ := mountFor(ms, "/procfoo"); got.Mountpoint != "/" {
		t.Errorf("mountFor(/procfoo) = %q, want /", got.Mountpoint)
	}
	if _, err := parseMountInfo(strings.NewReader("1 2 3\n")); err == nil {
		t.Error("short line parsed without error")
	}
}

func TestCgroupV1Binds(t *testing.T) {
	mounts, err := parseMountInfo(strings.NewReader(`31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`))
	if err != nil {
		t.Fatal(err)
	}
	binds, links := cgroupV1Binds(map[string]string{
		"cpu":          "/sys/fs/cgroup/cpu,cpuacct/berth/c1",
		"cpuacct":      "/sys/fs/cgroup/cpu,cpuacct/berth/c1",
		"memory":       "/sys/fs/cgroup/memory/berth/c1/",
		"net_cls":      "/sys/fs/cgroup/net_cls,net_prio/berth/c1",
		"name=systemd": "/sys/fs/cgroup/systemd/berth/c1",
		"":             "/sys/fs/cgroup/unified/berth/c1",
	}, mounts)
	wantBinds := []cgroupBind{
		{"cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/berth/c1"},
		{"memory", "/sys/fs/cgroup/memory/berth/c1"},
		{"net_cls,net_prio", "/sys/fs/cgroup/net_cls,net_prio/berth/c1"},
		{"systemd", "/sys/fs/cgroup/systemd/berth/c1"},
	}
	wantLinks := []cgroupLink{
		{"cpu", "cpu,cpuacct"}, {"cpuacct", "cpu,cpuacct"},
		{"net_cls", "net_cls,net_prio"}, {"net_prio", "net_cls,net_prio"},
	}
	if !reflect.DeepEqual(binds, wantBinds) {
		t.Errorf("binds = %+v\nwant %+v", binds, wantBinds)
	}
	if !reflect.DeepEqual(links, wantLinks) {
		t.Errorf("links = %+v\nwant %+v", links, wantLinks)
	}

	// A directory no cgroup mount contains keeps the controller's name.
	binds, links = cgroupV1Binds(map[string]string{"pids": "/elsewhere/pids/x"}, mounts)
	if !reflect.DeepEqual(binds, []cgroupBind{{"pids", "/elsewhere/pids/x"}}) || len(links) != 0 {
		t.Errorf("unmatched: binds %+v links %+v", binds, links)
	}
}

func TestCgroupPathsFromProc(t *testing.T) {
	mounts, _ := parseMountInfo(strings.NewReader(`32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`))
	got := cgroupPathsFromProc("9:name=systemd:/a\n4:memory:/outer/b\n2:cpu,cpuacct:/c\n0::/d\n", mounts)
	want := map[string]string{
		"name=systemd": "/sys/fs/cgroup/systemd/a",
		"memory":       "/sys/fs/cgroup/memory/b",
		"cpu,cpuacct":  "/sys/fs/cgroup/cpu,cpuacct/c",
		"":             "/sys/fs/cgroup/unified/d",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestCgroupBindOptions(t *testing.T) {
	if got := cgroupBindOptions([]string{"nosuid", "noexec"}); ParseMountOptions(got).Flags&unix.MS_RDONLY == 0 {
		t.Errorf("%q: not read-only by default", got)
	}
	if got := cgroupBindOptions([]string{"rw", "nosuid"}); ParseMountOptions(got).Flags&unix.MS_RDONLY != 0 {
		t.Errorf("%q: read-only although rw was asked", got)
	}
	if got := ParseMountOptions(cgroupBindOptions(nil)).Flags; got&(unix.MS_BIND|unix.MS_REC) != unix.MS_BIND|unix.MS_REC {
		t.Errorf("not a recursive bind: %s", flagNames(got))
	}
}

func TestDeviceList(t *testing.T) {
	mode := os.FileMode(0o600)
	spec := &specs.Spec{Linux: &specs.Linux{Devices: []specs.LinuxDevice{
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &mode},
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
	}}}
	devs := devicesFor(spec)
	var paths []string
	for _, d := range devs {
		paths = append(paths, d.Path)
	}
	want := []string{"/dev/null", "/dev/fuse", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("devices %v, want %v (spec first, defaults not overridden)", paths, want)
	}
	for _, tc := range []struct {
		d    specs.LinuxDevice
		want uint32
	}{
		{devs[0], unix.S_IFCHR | 0o600},
		{devs[1], unix.S_IFCHR | 0o666},
		{specs.LinuxDevice{Type: "u"}, unix.S_IFCHR | 0o666},
		{specs.LinuxDevice{Type: "b"}, unix.S_IFBLK | 0o666},
		{specs.LinuxDevice{Type: "p"}, unix.S_IFIFO | 0o666},
	} {
		got, err := deviceMode(tc.d)
		if err != nil || got != tc.want {
			t.Errorf("deviceMode(%+v) = %#o, %v; want %#o", tc.d, got, err, tc.want)
		}
	}
	if _, err := deviceMode(specs.LinuxDevice{Type: "x"}); err == nil {
		t.Error("device type x accepted")
	}
}
