#!/usr/bin/env bash
# Interop test: real callers drive berth-runc in runc's place.
#
#   dockerd + containerd-shim-runc-v2   (docker run/exec/top/update/pause/stop/rm --runtime berth)
#   podman + conmon                     (podman --runtime $BERTH_RUNC run/exec/stop/rm)
#   containerd's ctr                    (ctr run --runc-binary $BERTH_RUNC, ctr task exec/kill)
#
# Every daemon runs privately under one temporary directory (/tmp/berth-interop.*):
# no host network changes, nothing in /var/lib/docker, /var/lib/containerd or the
# user's container storage. (Only podman's runtime calls use the runtime's default
# state root, as for any podman user; see README.md.) A trap always stops what was
# started, unmounts, removes the run's cgroups and the directory, then checks that
# nothing was left behind. README.md lists the runtime command lines each caller uses.
#
# Environment:
#   BERTH_RUNC                absolute path of the runtime under test (required)
#   BERTH_INTEROP_TRACE=1     run the runtime through a wrapper that logs argv, cwd,
#                             caller and exit status of every call (and the tail of the
#                             runtime's --log file when a call fails)
#   BERTH_INTEROP_TRACE_FILE  where that log goes (default: $TMPDIR/berth-interop-trace.log)
#   BERTH_INTEROP_ONLY        space-separated subset of "docker podman ctr" to run
#   BERTH_INTEROP_NO_INSTALL=1  do not apt-get install missing tools
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
image_tar=$(cd "$repo/.." && pwd)/shared/images/busybox.docker.tar.gz
image_ref=busybox:1.35

say() { printf '[interop %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	printf '[interop %s] FAIL: %s\n' "$(date +%T)" "$*" >&2
	# inside a section: record why it ended
	[ -n "${section:-}" ] && printf '%s: %s\n' "$section" "$*" >>"$work/failed-steps"
	exit 1
}

# ---------------------------------------------------------------- preflight

[ "$(id -u)" = 0 ] || die "must run as root (CI runs it as root)"
[ -n "${BERTH_RUNC:-}" ] || die "BERTH_RUNC is not set (absolute path of the runtime binary)"
case $BERTH_RUNC in /*) ;; *) die "BERTH_RUNC must be an absolute path, got '$BERTH_RUNC'" ;; esac
[ -x "$BERTH_RUNC" ] || die "BERTH_RUNC=$BERTH_RUNC is not an executable file"
[ -f "$image_tar" ] || die "test image not found: $image_tar"
only=${BERTH_INTEROP_ONLY:-docker podman ctr}

# Debian packages this test drives. Installed only when missing; services are
# kept from starting on install so no system daemon touches the host's defaults.
install_deps() {
	local pkgs=(docker.io containerd podman conmon runc iptables containernetworking-plugins tini)
	local need=() p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
	done
	[ ${#need[@]} -eq 0 ] && return 0
	[ "${BERTH_INTEROP_NO_INSTALL:-}" = 1 ] && die "missing packages: ${need[*]} (BERTH_INTEROP_NO_INSTALL=1)"
	say "installing ${need[*]}"
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# berth interop: keep services from starting during install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	local rc=0
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
		>/tmp/berth-interop-apt.log 2>&1 || rc=$?
	[ -n "$made_policy" ] && rm -f "$policy"
	if [ $rc -ne 0 ]; then
		tail -20 /tmp/berth-interop-apt.log >&2
		rm -f /tmp/berth-interop-apt.log
		die "apt-get install ${need[*]} failed"
	fi
	rm -f /tmp/berth-interop-apt.log
}
install_deps
for t in dockerd containerd containerd-shim-runc-v2 ctr podman conmon timeout umount; do
	command -v "$t" >/dev/null || die "$t not found after install"
done
if [ -x /usr/bin/docker ]; then docker_bin=/usr/bin/docker; else docker_bin=$(command -v docker) || die "docker CLI not found"; fi

# ---------------------------------------------------------------- host snapshot

# Host paths the callers would use by default. None of them may change.
runtime_default_root=/run/$(basename "$BERTH_RUNC")
host_paths=(/var/lib/docker /run/docker /run/docker.sock /etc/docker /var/lib/containerd /run/containerd
	/opt/containerd /var/lib/containers /run/containers /run/libpod /run/runc "$runtime_default_root" /run/crun /run/netns
	/etc/cni/net.d /etc/containers/networks /var/lib/cni /dev/shm/libpod_lock /root/.docker
	/root/.local/share/containers /root/.config/containers)

snapshot_paths() {
	local p
	for p in "${host_paths[@]}"; do
		if [ -d "$p" ]; then
			printf '%s: %s\n' "$p" "$(cd "$p" && find . -mindepth 1 -maxdepth 2 -not -type s | LC_ALL=C sort | tr '\n' ' ')"
		elif [ -e "$p" ]; then
			printf '%s: file\n' "$p"
		fi
	done
}

cgroup_roots() { awk '$0 ~ / - cgroup2? / {print $5}' /proc/self/mountinfo; }

# Top-level cgroup directories of every hierarchy.
snapshot_cgroups() {
	local r
	for r in $(cgroup_roots); do
		find "$r" -mindepth 1 -maxdepth 1 -type d
	done | LC_ALL=C sort
}

# Mount points at or under $1 (mountinfo field 5, octal escapes decoded), deepest first.
mounts_under() {
	awk -v d="$1" '{ m = $5; if (m == d || index(m, d "/") == 1) print m }' /proc/self/mountinfo |
		while IFS= read -r m; do printf '%b\n' "$m"; done |
		awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

# containerd 1.6's shims put their sockets in /run/containerd/s whatever the state dir
shim_sockets() { { find /run/containerd/s -maxdepth 1 -type s 2>/dev/null || true; } | LC_ALL=C sort; }
shim_sockets_before=$(shim_sockets)
keys_before=$(cat /proc/sys/kernel/keys/root_maxkeys /proc/sys/kernel/keys/root_maxbytes 2>/dev/null || true)
paths_before=$(snapshot_paths)
cgroups_before=$(snapshot_cgroups)

# ---------------------------------------------------------------- work dir

work=$(mktemp -d /tmp/berth-interop.XXXXXX)
id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
cg=berth-interop-$id # cgroup parent, containerd namespace and container-name prefix of this run
export BERTH_INTEROP_RUN=$work # every process this run starts inherits it: used to find leftovers
mkdir -p "$work/pids" "$work/tmp"

declare -a passed=() failed=()

# Processes this run started that are still alive (excluding this shell and its
# scanner): inherited marker, the work dir in their command line, a cgroup of this
# run, or this script among their ancestors.
run_pids() {
	local me=$BASHPID p stat rest pp chain hit
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		rest=${stat##*) }
		case $rest in Z*) continue ;; esac
		hit=
		if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "BERTH_INTEROP_RUN=$work"; then hit='env'; fi
		if [ -z "$hit" ] && tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF "$work"; then hit=cmdline; fi
		if [ -z "$hit" ] && grep -qE ":/$cg(/|\$)" "/proc/$p/cgroup" 2>/dev/null; then hit=cgroup; fi
		# walk the parent chain: skip the scanner's own children, note descendants of this script
		chain=$p
		while :; do
			stat=$(cat "/proc/$chain/stat" 2>/dev/null) || break
			rest=${stat##*) }
			pp=$(echo "$rest" | cut -d' ' -f2)
			[ "$pp" = "$me" ] && continue 2
			[ "$pp" = $$ ] && { [ -z "$hit" ] && hit=child; break; }
			[ "$pp" -le 1 ] && break
			chain=$pp
		done
		[ "$p" = "$me" ] && continue
		[ -n "$hit" ] && printf '%s %s (%s): %s\n' "$p" "$(cat "/proc/$p/comm" 2>/dev/null)" "$hit" \
			"$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | cut -c1-200)"
	done
	return 0
}

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(grep '^State:' "/proc/$1/status" 2>/dev/null) || return 1
	case $st in *Z*) return 1 ;; esac
}

# stop_pid NAME PID: SIGTERM, wait up to 20 s, then SIGKILL.
stop_pid() {
	local name=$1 pid=$2 i
	alive "$pid" || return 0
	say "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		sleep 0.2
	done
	if alive "$pid"; then
		say "$name (pid $pid) still running 20 s after SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

leaks=()
cleanup() {
	local status=$? p name pid m d left
	trap - EXIT INT TERM
	trap '' PIPE HUP # finish cleaning up even if whoever reads our output went away
	set +e
	say "cleanup"
	# 1. Ask the callers to remove their containers while their daemons still run.
	if [ -S "$work/docker/docker.sock" ]; then
		local ids=()
		mapfile -t ids < <(timeout 20 "$docker_bin" -H "unix://$work/docker/docker.sock" ps -aq 2>/dev/null)
		[ ${#ids[@]} -gt 0 ] && timeout 20 "$docker_bin" -H "unix://$work/docker/docker.sock" rm -f "${ids[@]}" >/dev/null 2>&1
	fi
	if [ -d "$work/podman" ]; then
		call_timeout=20 podman_cmd rm -a -f -t 0 >/dev/null 2>&1
	fi
	if [ -S "$work/ctr/containerd.sock" ]; then
		local c
		for c in $(timeout 10 ctr --address "$work/ctr/containerd.sock" -n "$cg" tasks ls -q 2>/dev/null); do
			timeout 10 ctr --address "$work/ctr/containerd.sock" -n "$cg" tasks kill -s SIGKILL "$c" >/dev/null 2>&1
			sleep 0.5
			timeout 10 ctr --address "$work/ctr/containerd.sock" -n "$cg" tasks rm -f "$c" >/dev/null 2>&1
		done
		for c in $(timeout 10 ctr --address "$work/ctr/containerd.sock" -n "$cg" containers ls -q 2>/dev/null); do
			timeout 10 ctr --address "$work/ctr/containerd.sock" -n "$cg" containers rm "$c" >/dev/null 2>&1
		done
	fi
	# 2. Stop the daemons this script started, in reverse order of start.
	for name in dockerd containerd-docker containerd-ctr; do
		[ -f "$work/pids/$name" ] && stop_pid "$name" "$(cat "$work/pids/$name")"
	done
	sleep 0.5
	# 3. Anything still alive, mounted or in a cgroup now is a leak: list it, then remove it.
	left=$(run_pids)
	if [ -n "$left" ]; then
		leaks+=("processes left after the daemons stopped:"$'\n'"$left")
		while read -r pid _; do
			[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
		done <<<"$left"
		sleep 0.5
	fi
	left=$(mounts_under "$work")
	if [ -n "$left" ]; then
		leaks+=("mounts left under $work:"$'\n'"$left")
		while IFS= read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "cannot unmount $m"
		done <<<"$left"
	fi
	# 4. Cgroups: this run's tree, plus top-level ones the callers create by default
	#    (docker, libpod_parent) when they did not exist before. rmdir only: never
	#    touches a cgroup with processes or children.
	local now new extra
	extra=$(for r in $(cgroup_roots); do [ -d "$r/$cg" ] && find "$r/$cg" -mindepth 1 -type d; done |
		sed -E "s#^.*/$cg/#/#" | grep -vxE '/(docker|podman|podman/conmon)' | LC_ALL=C sort -u)
	[ -n "$extra" ] && say "note: cgroups under /$cg left by the callers (removed): $(tr '\n' ' ' <<<"$extra")"
	now=$(snapshot_cgroups)
	new=$(comm -13 <(echo "$cgroups_before") <(echo "$now"))
	if [ -n "$new" ]; then
		local nonempty=""
		while IFS= read -r d; do
			case ${d##*/} in
			"$cg" | docker | libpod_parent) ;;
			*) continue ;;
			esac
			find "$d" -depth -mindepth 1 -type d -exec rmdir {} \; 2>/dev/null
			if [ -s "$d/cgroup.procs" ] || ! rmdir "$d" 2>/dev/null; then nonempty+="$d"$'\n'; fi
		done <<<"$new"
		[ -n "$nonempty" ] && leaks+=("cgroups that could not be removed:"$'\n'"$nonempty")
	fi
	# 5. Host paths: dockerd 20.10 makes /run/docker/plugins (plugin discovery) and
	#    containerd 1.6's shim may make /run/containerd/s whatever their flags say;
	#    podman (like any podman user) keeps the runtime's state in the runtime's
	#    default root (runc: /run/runc). Remove such directories when they are new
	#    and empty (rmdir only); anything left in them is reported below.
	comm -13 <(echo "$shim_sockets_before") <(shim_sockets) | while IFS= read -r p; do
		[ -n "$p" ] && rm -f "$p" # left by shims that had to be killed
	done
	for p in /run/docker /run/containerd /run/runc "$runtime_default_root"; do
		if ! grep -q "^$p:" <<<"$paths_before" && [ -d "$p" ]; then
			find "$p" -depth -type d -empty -delete 2>/dev/null
		fi
	done
	#    podman 4.3 has no setting for its blob-info cache: as root it always writes
	#    /var/lib/containers/cache/blob-info-cache-v1.boltdb. Remove it when new.
	if ! grep -q '^/var/lib/containers: .*blob-info-cache-v1.boltdb' <<<"$paths_before"; then
		rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
		grep -q '^/var/lib/containers: .*\./cache ' <<<"$paths_before" || rmdir /var/lib/containers/cache 2>/dev/null
		grep -q '^/var/lib/containers:' <<<"$paths_before" || rmdir /var/lib/containers 2>/dev/null
	fi
	local paths_after
	paths_after=$(snapshot_paths)
	if [ "$paths_before" != "$paths_after" ]; then
		leaks+=("host paths changed:"$'\n'"$(diff <(echo "$paths_before") <(echo "$paths_after") | grep '^[<>]')")
	fi
	local keys_after
	keys_after=$(cat /proc/sys/kernel/keys/root_maxkeys /proc/sys/kernel/keys/root_maxbytes 2>/dev/null)
	if [ "$keys_before" != "$keys_after" ]; then
		# dockerd raises root's keyring quota at start; put the host's values back.
		{ read -r k; read -r b; } <<<"$keys_before"
		echo "$k" >/proc/sys/kernel/keys/root_maxkeys
		echo "$b" >/proc/sys/kernel/keys/root_maxbytes
	fi
	# 6. Remove the work dir (only once nothing is mounted under it).
	local failed_steps=()
	[ -f "$work/failed-steps" ] && mapfile -t failed_steps <"$work/failed-steps"
	if [ -z "$(mounts_under "$work")" ]; then
		rm -rf "$work"
	else
		leaks+=("still mounted, $work kept:"$'\n'"$(mounts_under "$work")")
	fi
	# 7. Final check: nothing of this run is left.
	left=$(run_pids)
	[ -n "$left" ] && leaks+=("processes still alive after cleanup:"$'\n'"$left")
	now=$(snapshot_cgroups)
	new=$(comm -13 <(echo "$cgroups_before") <(echo "$now") | grep -E "/($cg|docker|libpod_parent)\$")
	[ -n "$new" ] && leaks+=("cgroups still present after cleanup:"$'\n'"$new")
	if [ -n "$trace_log" ] && [ -f "$trace_log" ]; then
		say "runtime call trace: $trace_log ($(grep -c $'\tstart\t' "$trace_log") calls, $(grep -c $'\tend\t.*rc=[1-9]' "$trace_log") failed)"
	fi
	# Leftovers count as one more failed item, so the closing line agrees with the status.
	[ ${#leaks[@]} -gt 0 ] && failed+=("no-leftovers")
	[ $status -ne 0 ] && [ ${#failed[@]} -eq 0 ] && failed+=("aborted")
	echo >&2
	say "passed: ${passed[*]:-none}"
	say "failed: ${failed[*]:-none}"
	[ ${#failed_steps[@]} -gt 0 ] && printf '[interop] failed check: %s\n' "${failed_steps[@]}" >&2
	if [ ${#leaks[@]} -gt 0 ]; then
		local l
		for l in "${leaks[@]}"; do printf '[interop] LEAK: %s\n' "$l" >&2; done
	fi
	if [ ${#failed[@]} -gt 0 ] && [ $status -eq 0 ]; then status=1; fi
	if [ $status -eq 0 ]; then say "OK: ${#passed[@]} passed, 0 failed"; else say "FAILED (exit $status)"; fi
	echo "${#passed[@]} passed, ${#failed[@]} failed"
	exit $status
}
trace_log=
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- runtime (optionally traced)

runtime=$BERTH_RUNC
if [ "${BERTH_INTEROP_TRACE:-}" = 1 ]; then
	trace_log=${BERTH_INTEROP_TRACE_FILE:-${TMPDIR:-/tmp}/berth-interop-trace.log}
	: >"$trace_log"
	# The wrapper keeps the runtime's file name: podman decides some behaviour from it.
	mkdir -p "$work/trace-bin"
	runtime=$work/trace-bin/$(basename "$BERTH_RUNC")
	{
		echo '#!/bin/bash'
		echo '# berth interop trace wrapper: log the call, run the real runtime, log its status.'
		printf 'real=%q\nlog=%q\n' "$BERTH_RUNC" "$trace_log"
		cat <<'EOF'
caller=$(cat /proc/$PPID/comm 2>/dev/null || echo '?')
args=$(printf ' %q' "$@")
logfile=
prev=
for a in "$@"; do
	[ "$prev" = --log ] && logfile=$a
	case $a in --log=*) logfile=${a#--log=} ;; esac
	prev=$a
done
printf '%s\tstart\tpid=%s\tcaller=%s\tcwd=%s\targv=%s\n' "$(date +%T.%N)" $$ "$caller" "$PWD" "${args# }" >>"$log"
"$real" "$@"
rc=$?
printf '%s\tend\tpid=%s\trc=%s\n' "$(date +%T.%N)" $$ $rc >>"$log"
if [ $rc -ne 0 ] && [ -n "$logfile" ] && [ -f "$logfile" ]; then
	tail -n 5 "$logfile" | sed "s/^/\t\tlog pid=$$: /" >>"$log"
fi
exit $rc
EOF
	} >"$runtime"
	chmod 755 "$runtime"
	say "tracing runtime calls to $trace_log"
fi
say "runtime under test: $BERTH_RUNC"
say "work dir: $work (cgroups and names: $cg)"

# ---------------------------------------------------------------- helpers

# run_to FILE SECS CMD...: run CMD with a time limit, stdout to FILE, stderr to FILE.err.
# Returns CMD's status (124 when it hit the limit); prints stderr on failure.
run_to() {
	local f=$1 t=$2 rc=0 start=$SECONDS
	shift 2
	if declare -F "$1" >/dev/null; then
		call_timeout=$t "$@" >"$f" 2>"$f.err" || rc=$? # a shell function applies $call_timeout
	else
		timeout -k 5 "$t" "$@" >"$f" 2>"$f.err" || rc=$?
	fi
	# timeout(1) says 124, or 137 when it had to SIGKILL after the grace period
	[ $rc -eq 137 ] && [ $((SECONDS - start)) -ge "$t" ] && rc=124
	if [ $rc -ne 0 ]; then
		[ $rc -eq 124 ] && say "timed out after ${t}s: $*"
		sed 's/^/    stderr: /' "$f.err" >&2
	fi
	return $rc
}

# A section runs its checks in order. A failed check is recorded and the section
# goes on (one run shows every failing call); a check that later ones depend on is
# followed by "|| die", which ends the section.

# fail_step DESC: record a failed check of the current section.
fail_step() {
	say "FAIL: $1"
	printf '%s: %s\n' "$section" "$1" >>"$work/failed-steps"
	return 1
}

# expect_out DESC EXPECTED SECS CMD...: CMD must succeed and print exactly EXPECTED.
expect_out() {
	local desc=$1 want=$2 t=$3 f rc=0
	shift 3
	f=$(mktemp "$work/tmp/out.XXXXXX")
	say "$desc: $*"
	run_to "$f" "$t" "$@" || rc=$?
	timed_out $rc "$desc"
	[ $rc -eq 0 ] || { fail_step "$desc: exit status $rc from: $*"; return 1; }
	if ! cmp -s "$f" <(printf '%s' "$want"); then
		echo "    want: $(printf '%s' "$want" | od -An -c | tr -s ' ' | head -3)" >&2
		echo "    got:  $(od -An -c <"$f" | tr -s ' ' | head -3)" >&2
		sed 's/^/    stderr: /' "$f.err" >&2
		fail_step "$desc: unexpected output from: $*"
		return 1
	fi
}

# must DESC SECS CMD...: CMD must succeed; its stdout is left in $work/tmp/last.
must() {
	local desc=$1 t=$2 rc=0
	shift 2
	say "$desc: $*"
	run_to "$work/tmp/last" "$t" "$@" || rc=$?
	timed_out $rc "$desc"
	[ $rc -eq 0 ] || { fail_step "$desc: exit status $rc from: $*"; return 1; }
}

# timed_out STATUS DESC: a command that hit its time limit ends the section: with a
# hanging runtime the checks after it would only wait for their own limits.
timed_out() {
	[ "$1" -ne 124 ] || die "$2: timed out"
}

last() { cat "$work/tmp/last"; }

# exit_status CMD...: run CMD (time limit 60 s), its output to stderr; print its exit status.
exit_status() {
	local rc=0
	if declare -F "$1" >/dev/null; then
		"$@" >&2 || rc=$?
	else
		timeout -k 5 "${call_timeout:-60}" "$@" >&2 || rc=$?
	fi
	[ $rc -eq 124 ] && return 124
	echo $rc
}

# wait_ready NAME PID LOG SECS CMD...: wait until CMD succeeds while PID lives.
# Returns non-zero (after printing the daemon's log) if it does not.
wait_ready() {
	local name=$1 pid=$2 log=$3 secs=$4 i
	shift 4
	for ((i = 0; i < secs * 5; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -20 "$log" | sed 's/^/    log: /' >&2
			say "FAIL: $name exited while starting (log above)"
			return 1
		fi
		if timeout 5 "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	tail -20 "$log" | sed 's/^/    log: /' >&2
	say "FAIL: $name not ready after ${secs}s"
	return 1
}

# start_containerd NAME DIR: a containerd with all its state in DIR, socket DIR/containerd.sock.
# Started from the main shell, so it is this script's child.
start_containerd() {
	local name=$1 d=$2
	mkdir -p "$d" || return 1
	cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
oom_score = 0
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  address = "$d/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
EOF
	TMPDIR=$work/tmp containerd --config "$d/config.toml" --log-level info >"$d/containerd.log" 2>&1 &
	echo $! >"$work/pids/containerd-$name"
	say "started containerd-$name (pid $!)"
	wait_ready "containerd-$name" $! "$d/containerd.log" 30 ctr --address "$d/containerd.sock" version
}

# ---------------------------------------------------------------- docker

start_docker() {
	local d=$work/docker
	mkdir -p "$d/cli" || return 1
	# key.json would otherwise go to /etc/docker (dockerd 20.10 has no flag for it)
	printf '{"deprecated-key-path": "%s"}\n' "$d/key.json" >"$d/daemon.json" || return 1
	start_containerd docker "$d/containerd" || return 1
	TMPDIR=$work/tmp dockerd \
		--data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
		-H "unix://$d/docker.sock" --containerd "$d/containerd/containerd.sock" \
		--config-file "$d/daemon.json" \
		--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
		--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "/$cg/docker" \
		--add-runtime "berth=$runtime" \
		>"$d/dockerd.log" 2>&1 &
	echo $! >"$work/pids/dockerd"
	say "started dockerd (pid $!)"
	wait_ready dockerd $! "$d/dockerd.log" 60 "$docker_bin" -H "unix://$d/docker.sock" version
}

section_docker() {
	export DOCKER_HOST=unix://$work/docker/docker.sock DOCKER_CONFIG=$work/docker/cli
	local docker=$docker_bin name=$cg-docker full
	must "docker info lists the berth runtime" 30 "$docker" info --format '{{json .Runtimes.berth}}' &&
		{ grep -qF "\"$runtime\"" "$work/tmp/last" || fail_step "docker info: runtime berth is not $runtime: $(last)"; }
	must "docker load" 120 "$docker" load -i "$image_tar" || die "cannot go on without the image"
	grep -qF "Loaded image: $image_ref" "$work/tmp/last" || die "docker load did not load $image_ref: $(last)"

	expect_out "docker run --rm" $'ok\n' 60 \
		"$docker" run --runtime berth --rm --network none $image_ref echo ok
	expect_out "docker run --rm -t (console socket)" $'tty-ok\r\n' 60 \
		"$docker" run --runtime berth --rm -t --network none $image_ref echo tty-ok
	expect_out "docker run exit status" $'7\n' 60 \
		exit_status "$docker" run --runtime berth --rm --network none $image_ref sh -c 'exit 7'

	must "docker run -d" 60 "$docker" run -d --runtime berth --network none --name "$name" $image_ref sleep 100 ||
		die "cannot go on without the detached container"
	full=$(last)
	expect_out "docker inspect: runtime and state" $'berth true\n' 30 \
		"$docker" inspect -f '{{.HostConfig.Runtime}} {{.State.Running}}' "$name"
	expect_out "docker exec" $'from-exec\n' 60 "$docker" exec "$name" echo from-exec
	expect_out "docker exec -t (console socket)" $'from-exec-tty\r\n' 60 "$docker" exec -t "$name" echo from-exec-tty
	expect_out "docker exec exit status" $'3\n' 60 exit_status "$docker" exec "$name" sh -c 'exit 3'
	must "docker top (runtime ps)" 30 "$docker" top "$name" &&
		{ grep -q 'sleep 100' "$work/tmp/last" || fail_step "docker top does not list 'sleep 100': $(last)"; }
	must "docker update --pids-limit (runtime update)" 30 "$docker" update --pids-limit 321 "$name" &&
		expect_out "pids.max of the container's cgroup" $'321\n' 10 cat "/sys/fs/cgroup/pids/$cg/docker/$full/pids.max"
	must "docker pause (runtime pause)" 30 "$docker" pause "$name" &&
		expect_out "docker inspect: paused" $'paused\n' 30 "$docker" inspect -f '{{.State.Status}}' "$name" &&
		must "docker unpause (runtime resume)" 30 "$docker" unpause "$name"
	expect_out "docker inspect: running" $'running\n' 30 "$docker" inspect -f '{{.State.Status}}' "$name"
	must "docker stop" 60 "$docker" stop -t 1 "$name"
	expect_out "docker inspect: stopped by SIGKILL" $'exited 137\n' 30 \
		"$docker" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$name"
	must "docker rm" 60 "$docker" rm "$name"
	expect_out "no docker containers left" '' 30 "$docker" ps -aq
}

# ---------------------------------------------------------------- podman

podman_cmd() {
	local p=$work/podman
	CONTAINERS_CONF=$p/containers.conf CONTAINERS_STORAGE_CONF=$p/storage.conf \
		CONTAINERS_REGISTRIES_CONF=$p/registries.conf TMPDIR=$p/tmp \
		timeout -k 5 "${call_timeout:-120}" podman --root "$p/root" --runroot "$p/run" --tmpdir "$p/libpod" \
		--runtime "$runtime" --cgroup-manager cgroupfs --events-backend file \
		--network-config-dir "$p/net" --volumepath "$p/volumes" --storage-driver overlay "$@"
}

section_podman() {
	local p=$work/podman name=$cg-podman
	mkdir -p "$p/tmp" "$p/net" || die "mkdir $p"
	cat >"$p/containers.conf" <<EOF || die "write $p/containers.conf"
[containers]
cgroupns = "host"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = "$p/libpod"
static_dir = "$p/root/libpod"
volume_path = "$p/volumes"
image_copy_tmp_dir = "$p/tmp"
# conmon makes its console sockets in \$TMPDIR
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=$p/tmp"]
# podman keys some behaviour (JSON errors from the runtime) on the runtime's file
# name; list berth-runc with runc so podman calls it exactly as it calls runc.
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "berth-runc"]
[network]
network_config_dir = "$p/net"
EOF
	cat >"$p/storage.conf" <<EOF || die "write $p/storage.conf"
[storage]
driver = "overlay"
runroot = "$p/run"
graphroot = "$p/root"
EOF
	: >"$p/registries.conf"
	# As root, podman gives containers RLIMIT_NOFILE and RLIMIT_NPROC of 1048576, which
	# needs CAP_SYS_RESOURCE. Where this script runs without it (some sandboxes), ask for
	# what podman itself holds: the current nofile limit, and for nproc at most 32768
	# (podman 4.3 lowers its own RLIMIT_NPROC to that at start).
	local capeff nproc
	capeff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
	if ((((0x$capeff >> 24) & 1) == 0)); then
		nproc=$(ulimit -Hu)
		[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
		sed -i "/^\[containers\]/a default_ulimits = [\"nofile=$(ulimit -Hn):$(ulimit -Hn)\", \"nproc=$nproc:$nproc\"]" \
			"$p/containers.conf"
		say "no CAP_SYS_RESOURCE: podman containers get nofile=$(ulimit -Hn), nproc=$nproc"
	fi
	# podman 4.3 reads only uncompressed docker archives
	gunzip -c "$image_tar" >"$p/busybox.docker.tar" || die "gunzip $image_tar"
	must "podman load" 120 podman_cmd load -i "$p/busybox.docker.tar" || die "cannot go on without the image"
	grep -qF "$image_ref" "$work/tmp/last" || die "podman load did not load $image_ref: $(last)"
	local run=(podman_cmd run --network none --cgroup-parent "/$cg/podman")
	expect_out "podman run --rm" $'ok\n' 60 "${run[@]}" --rm $image_ref echo ok
	expect_out "podman run --rm -t (console socket)" $'tty-ok\r\n' 60 "${run[@]}" --rm -t $image_ref echo tty-ok
	expect_out "podman run exit status" $'7\n' 60 exit_status "${run[@]}" --rm $image_ref sh -c 'exit 7'
	must "podman run -d" 60 "${run[@]}" -d --name "$name" $image_ref sleep 100 ||
		die "cannot go on without the detached container"
	expect_out "podman inspect: runtime and state" "$runtime true"$'\n' 30 \
		podman_cmd inspect -f '{{.OCIRuntime}} {{.State.Running}}' "$name"
	must "podman ps --sync" 30 podman_cmd ps --sync --format '{{.Names}} {{.Status}}' &&
		{ grep -q "^$name Up" "$work/tmp/last" || fail_step "podman ps --sync does not show $name up: $(last)"; }
	expect_out "podman exec" $'from-exec\n' 60 podman_cmd exec "$name" echo from-exec
	expect_out "podman exec -t (console socket)" $'from-exec-tty\r\n' 60 podman_cmd exec -t "$name" echo from-exec-tty
	must "podman stop" 60 podman_cmd stop -t 1 "$name"
	expect_out "podman inspect: stopped by SIGKILL" $'exited 137\n' 30 \
		podman_cmd inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$name"
	must "podman rm" 60 podman_cmd rm "$name"
	expect_out "no podman containers left" '' 30 podman_cmd ps -aq
}

# ---------------------------------------------------------------- ctr

section_ctr() {
	local c=$work/ctr
	local ctr=(ctr --address "$c/containerd.sock" --namespace "$cg")
	local ref=docker.io/library/$image_ref
	local run=(run --runc-binary "$runtime" --runc-root "$c/runc-root" --fifo-dir "$c/fifo")
	gunzip -c "$image_tar" >"$c/busybox.docker.tar" || die "gunzip $image_tar"
	must "ctr images import" 120 "${ctr[@]}" images import --all-platforms "$c/busybox.docker.tar" ||
		die "cannot go on without the image"
	must "ctr images ls" 30 "${ctr[@]}" images ls -q
	grep -qxF "$ref" "$work/tmp/last" || die "ctr images import did not import $ref: $(last)"

	expect_out "ctr run --rm" $'ok\n' 60 "${ctr[@]}" "${run[@]}" --rm "$ref" "$cg-ctr-run" echo ok
	expect_out "ctr run exit status" $'7\n' 60 \
		exit_status "${ctr[@]}" "${run[@]}" --rm "$ref" "$cg-ctr-exit" sh -c 'exit 7'

	local name=$cg-ctr i
	must "ctr run -d" 60 "${ctr[@]}" "${run[@]}" -d "$ref" "$name" sleep 100 ||
		die "cannot go on without the detached container"
	must "ctr task ls" 30 "${ctr[@]}" tasks ls &&
		{ grep -qE "^$name +[0-9]+ +RUNNING" "$work/tmp/last" || fail_step "ctr task $name is not RUNNING: $(last)"; }
	expect_out "ctr task exec" $'from-exec\n' 60 "${ctr[@]}" tasks exec --fifo-dir "$c/fifo" --exec-id "$cg-exec" "$name" echo from-exec
	must "ctr task kill" 30 "${ctr[@]}" tasks kill -s SIGKILL "$name"
	for ((i = 0; i < 50; i++)); do
		"${ctr[@]}" tasks ls 2>/dev/null | grep -qE "^$name +[0-9]+ +STOPPED" && break
		sleep 0.2
	done
	"${ctr[@]}" tasks ls | grep -qE "^$name +[0-9]+ +STOPPED" || fail_step "ctr task $name did not stop after SIGKILL"
	must "ctr task rm" 30 "${ctr[@]}" tasks rm "$name"
	must "ctr container rm" 30 "${ctr[@]}" containers rm "$name"
	expect_out "no ctr containers left" '' 30 "${ctr[@]}" containers ls -q
}

# ---------------------------------------------------------------- main

# run_section NAME: start the daemons it needs (from this shell, so they are its
# children), then run its checks in a subshell that stops at the first failure.
run_section() {
	local name=$1 rc=0
	case " $only " in *" $name "*) ;; *) return 0 ;; esac
	echo >&2
	say "=== $name"
	case $name in
	docker) start_docker || rc=$? ;;
	ctr) start_containerd ctr "$work/ctr" || rc=$? ;;
	esac
	local before=0 after=0
	[ -f "$work/failed-steps" ] && before=$(wc -l <"$work/failed-steps")
	if [ $rc -eq 0 ]; then
		set +e
		(
			set +e
			section=$name
			"section_$name"
		)
		rc=$?
		set -e
	fi
	[ -f "$work/failed-steps" ] && after=$(wc -l <"$work/failed-steps")
	if [ $rc -eq 0 ] && [ "$after" = "$before" ]; then
		passed+=("$name")
		say "=== $name: PASS"
	else
		failed+=("$name")
		say "=== $name: FAIL"
		if [ -n "$trace_log" ]; then
			say "last runtime calls:"
			tail -n 8 "$trace_log" | cut -c1-400 >&2
		fi
	fi
}

run_section docker
run_section podman
run_section ctr
