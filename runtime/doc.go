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
// "init" from a sealed in-memory copy (memfd, so that the container can never
// reach and overwrite the host binary: CVE-2019-5736), and a C constructor
// (package nsenter) joins and creates the namespaces before the Go runtime
// starts in that process. The Go part of init (Init) then builds the root
// filesystem (package rootfs), applies the process settings, reports
// "created" to the parent and waits on the container's exec fifo until
// start; it then execs the user's program, so the container's PID 1 is the
// user's program with no shim of berth's left inside.
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
