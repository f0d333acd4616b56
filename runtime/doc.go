// Package runtime is berth's OCI runtime library: it turns an OCI bundle (a
// runtime-spec config and a root filesystem) into an isolated process and
// manages its lifecycle (create, start, state, kill, delete, exec), keeping
// state on disk under a root directory so that separate invocations of
// berth-runc, or the engine, can act on the same container.
//
// # How the container's first process is made
//
// Go cannot safely unshare or setns a user or mount namespace once its
// runtime has started threads. berth therefore re-executes its own binary as
// "init" from a detached read-only bind mount of itself, or a sealed
// in-memory copy (memfd) where that is not possible, so that the container
// can never reach and overwrite the host binary (CVE-2019-5736), and a C constructor
// (package nsenter) joins and creates the namespaces before the Go runtime
// starts in that process. The Go part of init (Init) then builds the root
// filesystem (package rootfs), applies the process settings, reports
// "created" to the parent and waits on the container's exec fifo until
// start; it then execs the user's program, so the container's PID 1 is the
// user's program with no shim of berth's left inside.
//
// # The C init (the fast path)
//
// Starting the Go runtime in the init, and decoding its JSON config, was
// the largest single cost of a create. So for the configurations most
// containers have, the init never starts Go: the runtime compiles the
// init's whole job into a plan (cinit_linux.go: the mount, device and
// symlink steps of package rootfs from rootfs.PlanPrepare and
// PlanFinalize, the pivot, hostname, sysctls, keyring, rlimits, the
// handshake messages, and the process: argv, env, cwd, ids, capability
// sets, no_new_privs, the seccomp program compiled in Go), and the nsenter
// constructor executes it in C (nsenter/cinit.c) and execs the user's
// program. It keeps every guarantee of the Go init:
//
//   - The init is still an exec of the read-only bind (or sealed copy) of
//     the runtime binary, so CVE-2019-5736 stays covered; it is
//     non-dumpable from its first instruction.
//   - Mount destinations are resolved when the step runs, in the init,
//     not in the parent: symlinks are followed lexically inside the root
//     (as securejoin does) and every open goes through openat2 with
//     RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS relative to a handle on the
//     rootfs, missing directories are made one confined component at a
//     time, and the mount is made on /proc/self/fd/N of the O_PATH handle
//     and then checked to be a mount root. The parent pre-resolves no path
//     the rootfs (and so a container sharing it) could change. Components
//     of /proc and /sys destinations must not be symlinks.
//   - Before the ready report every descriptor but stdio, the preserved
//     ones and the exec fifo is closed (close_range), the socket right
//     after it, and create waits for that close (CVE-2024-21626); the cwd
//     must resolve inside the root (getcwd without "(unreachable)").
//   - The seccomp filter is loaded where finishProcess loads it: before the
//     capabilities drop without no_new_privs, last with it.
//   - Errors come back in the same message format; after start, the same
//     "berth-runc: ..." on stderr and exit status 127 or 126.
//
// The Go init stays for everything the plan does not express, decided in
// the runtime before the spawn (cinitPlan): user and time namespaces, a
// joined mount namespace or none, a terminal or console socket,
// createContainer and startContainer hooks, AppArmor and SELinux labels,
// --no-pivot, tmpcopyup, cgroup v2 mounts; and for every create when
// BERTH_RUNC_GOINIT=1 (the tests run both paths against each other). Exec
// into a running container always uses the Go init.
//
// Exec uses the same path: the constructor joins every namespace of the
// running container, and Init (in exec mode) applies the process settings
// and execs.
//
// Confinement (capabilities, seccomp, resource limits) plugs into
// applyProcess and into package cgroups.
//
// This package imports only runtime/* packages and libraries; it never
// prints: errors go back to the caller.
package runtime
