#!/usr/bin/env bash
# berth's main job on the bundled demo image: run a busybox container with
# berth-runc and show what it sees: its own hostname, that it is PID 1, and
# the only processes it can see are its own.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNC=${BERTH_RUNC:-bin/berth-runc}
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
cleanup() { "$RUNC" --root "$work/state" delete -f berth-demo >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done
mkdir -p "$bundle/rootfs/"{proc,sys,dev,etc,tmp}
echo 'root:x:0:0:root:/:/bin/sh' >"$bundle/rootfs/etc/passwd"

cat >"$bundle/config.json" <<'JSON'
{
  "ociVersion": "1.2.0",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["/bin/sh", "-c", "echo \"hostname: $(hostname)\"; echo \"my pid: $$\"; echo 'processes I can see:'; ps -o pid,user,args; exit 0"],
    "env": ["PATH=/bin", "TERM=xterm"],
    "cwd": "/"
  },
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "berth-demo",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
JSON

echo "\$ berth-runc run --bundle $bundle berth-demo"
"$RUNC" --root "$work/state" run --bundle "$bundle" berth-demo </dev/null
