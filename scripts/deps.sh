#!/usr/bin/env bash
# Installs the Debian packages berth's build, tests and demo need, only when missing.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in busybox-static libc6-dev gcc make iproute2 nftables util-linux ${BERTH_EXTRA_DEPS:-}; do
	have "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
