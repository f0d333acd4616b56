#!/usr/bin/env bash
# berth's main job on the bundled demo images: load them, run the
# nginx+redis image detached with a published port, fetch the page it
# serves, list it, read its logs, exec into it, then stop and remove it.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-bin/berth}
IMAGES=${BERTH_IMAGES:-../shared/images}
PORT=${BERTH_DEMO_PORT:-8080}
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "berth $*"; "$BERTH" "$@"; }
cleanup() { "$BERTH" rm -f berth-demo >/dev/null 2>&1 || true; }
trap cleanup EXIT

run load -i "$IMAGES/busybox.docker.tar.gz"
run pull "oci:$IMAGES/oci:web:1"
run images
run run -d --name berth-demo -p "$PORT:80" web:1
say "curl http://127.0.0.1:$PORT/"
for i in $(seq 50); do
	if page=$(exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && cat <&3); then
		break
	fi
	sleep 0.1
done
printf '%s\n' "$page" | sed -n '/^\r\{0,1\}$/,$p' | tail -n +2
run ps
run exec berth-demo sh -c 'redis-server --daemonize yes >/dev/null && sleep 0.3 && redis-cli ping'
run logs berth-demo
run stop berth-demo
run rm berth-demo
run run --rm busybox:1.35 sh -c 'echo "hello from $(hostname), pid $$"'
