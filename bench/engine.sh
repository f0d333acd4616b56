#!/usr/bin/env bash
# make bench-engine: the berth engine against Docker and Podman, side by side
# in one run (bench/enginebench). Installs the peers from Debian when missing;
# the program starts its own dockerd, registry and podman configuration under
# a berth-bench-* temporary directory and removes everything at the end.
# Env: BERTH (required), BENCH_OUT (default bench/out), BENCH_ENGINE_ARGS
# (extra flags, e.g. "-n 50 -only run"); arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${BERTH:?set BERTH to the berth binary (make bench-engine does)}"

have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for p in docker.io containerd runc podman conmon containernetworking-plugins docker-registry skopeo iperf3 iproute2 iptables; do
	have "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

out=${BENCH_OUT:-bench/out}
# shellcheck disable=SC2086 # BENCH_ENGINE_ARGS is a list of flags
exec "${GO:-go}" run ./bench/enginebench -berth "$BERTH" -out "$out" ${BENCH_ENGINE_ARGS:-} "$@"
