#!/usr/bin/env bash
# Runs tests on a pure cgroup v2 host: a throw-away QEMU VM booting Debian's
# cloud kernel with an initramfs that holds busybox and the test binaries,
# with cgroup2 (every controller) at /sys/fs/cgroup and a loop-backed ext2
# /tmp (so block I/O has a disk to go to). Not part of `make test` (it
# downloads a kernel and boots a VM); run it by hand, as root:
#
#   runtime/cgroups/testdata/v2vm.sh cgroups [go test flags]      this package
#   runtime/cgroups/testdata/v2vm.sh integration [go test flags]  berth-runc end to end
#
# e.g. `... integration -test.run 'TestOOMKillReported|TestUpdate'`. It
# installs qemu-system-x86 and busybox-static when missing, uses KVM when
# /dev/kvm works (BERTH_V2VM_ACCEL=tcg emulates instead, for hosts whose
# nested KVM cannot run a kernel), and exits with the tests' status.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
target=${1:-cgroups}
shift || true
work=$(mktemp -d /tmp/berth-v2vm-XXXXXX)
trap 'rm -rf "$work"' EXIT

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v busybox >/dev/null || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's cloud kernel, unpacked (not installed).
kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
(cd "$work" && apt-get download -q "$kpkg" 2>/dev/null && dpkg-deb -x ./*.deb kern)
vmlinuz=$(ls "$work"/kern/boot/vmlinuz-*)
loop=$(find "$work/kern/lib/modules" -name loop.ko | head -1)

root=$work/initramfs
mkdir -p "$root"/{bin,proc,sys,dev,tmp,etc,newroot}
cp "$(command -v busybox)" "$root/bin/busybox"
cp "$loop" "$root/loop.ko"
case $target in
cgroups)
	(cd "$repo/runtime/cgroups" && CGO_ENABLED=0 go test -c -o "$root/run.test" .)
	;;
integration)
	make -C "$repo" -s build
	cp "$repo/bin/berth-runc" "$root/bin/berth-runc"
	(cd "$repo/tests/integration" && CGO_ENABLED=0 go test -c -o "$root/run.test" .)
	;;
*)
	echo "usage: $0 cgroups|integration [go test flags]" >&2
	exit 2
	;;
esac
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
export PATH=/bin
if [ ! -e /.switched ]; then
	# pivot_root (which containers need) cannot leave the initramfs: move
	# everything to a tmpfs and make that the root.
	/bin/busybox mount -t tmpfs -o size=1g tmpfs /newroot
	for f in /*; do
		case $f in /newroot|/proc|/sys|/dev) ;; *) /bin/busybox cp -a "$f" /newroot/ ;; esac
	done
	/bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev
	/bin/busybox touch /newroot/.switched
	exec /bin/busybox switch_root /newroot /init
fi
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /loop.ko
dd if=/dev/zero of=/disk.img bs=1M count=256 2>/dev/null
losetup /dev/loop0 /disk.img && mke2fs -q /dev/loop0 && mount /dev/loop0 /tmp
echo "berth-v2vm: kernel $(uname -r); $(grep ' /sys/fs/cgroup ' /proc/mounts); controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd /tmp
TMPDIR=/tmp BERTH_RUNC=/bin/berth-runc /run.test -test.v -test.count=1 $(cat /args) 2>&1
echo "berth-v2vm: exit $?"
poweroff -f
EOF
chmod +x "$root/init"
printf '%s\n' "$*" >"$root/args"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initramfs.gz"

accel=(-machine accel=tcg -cpu max)
if [ "${BERTH_V2VM_ACCEL:-kvm}" = kvm ] && [ -w /dev/kvm ]; then
	# A VM that starts and keeps running (stopped by timeout) means KVM works.
	set +e
	timeout 2 qemu-system-x86_64 -enable-kvm -machine none -nodefaults -display none -S </dev/null >/dev/null 2>&1
	[ $? -eq 124 ] && accel=(-enable-kvm -cpu "${BERTH_V2VM_CPU:-host}")
	set -e
fi
out=$work/console.log
timeout 1800 qemu-system-x86_64 "${accel[@]}" -m 3072 -smp 2 -nographic -no-reboot \
	-kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 loglevel=3 panic=-1 cgroup_no_v1=all" | tee "$out"
grep -q '^berth-v2vm: exit 0' "$out"
