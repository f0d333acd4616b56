#!/usr/bin/env bash
# make bench: compares berth-runc with runc (start latency, peak RSS) on one
# shared busybox bundle. Installs the peer and busybox-static when missing.
# Env: BERTH_RUNC (required), BENCH_PEER (default runc), BENCH_OUT (default
# bench/out), BENCH_ARGS (extra flags, e.g. "-n 300"); arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BERTH_RUNC:?set BERTH_RUNC to the berth-runc binary (make bench does)}"

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for p in runc busybox-static; do
	have "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

out=${BENCH_OUT:-bench/out}
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
exec "${GO:-go}" run ./bench/runtimebench -berth "$BERTH_RUNC" -peer "${BENCH_PEER:-runc}" -out "$out" ${BENCH_ARGS:-} "$@"
