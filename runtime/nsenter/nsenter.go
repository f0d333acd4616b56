// Package nsenter puts a freshly spawned berth-runc process into a container's
// namespaces before the Go runtime starts.
//
// # Why a C constructor
//
// Go starts several threads before main runs. The kernel refuses setns(2) into
// a user or mount namespace from a multi-threaded process, and a user
// namespace must be created before the namespaces it should own. Re-executing
// with SysProcAttr.Cloneflags can create namespaces but cannot join existing
// ones (exec into a running container, or a config.json namespace with a
// path), and cannot write time namespace offsets before the first process
// enters it. So, like runc and crun, berth-runc links a small constructor
// (nsenter.c) that runs while the process is still single-threaded. It is a
// no-op unless _BERTH_INITPIPE is set, so ordinary commands pay only a
// getenv.
//
// # Protocol
//
// The parent (package runtime) passes a socket as _BERTH_INITPIPE. It sends a
// 4-byte little-endian length and a text message of lines:
//
//	clone <hex CLONE_NEW* flags>    namespaces to create
//	join <hex CLONE_NEW* flag> <path>  namespaces to join (user first)
//	timens <clock> <secs> <nanosecs>   time namespace offsets
//	fork                               always fork (e.g. to enter a joined pid namespace)
//	cinit                              run the C init (cinit.c) instead of returning to Go
//
// On cgroup v1 the descriptors of the container's "tasks" files come with
// the length (SCM_RIGHTS); the constructor first writes "0" to each, which
// moves this still single-threaded process into the container's cgroups
// without the kernel's global threadgroup lock (see
// cgroups.Manager.TaskFiles). With "clone 0" the process was already
// cloned into its new namespaces, and the pid it reports is ignored.
//
// The constructor joins, then creates the user namespace and waits while the
// parent writes its id maps (message 'U', answer 'u'), then unshares the
// others. A new pid or time namespace only applies to children, so it then
// forks with CLONE_PARENT, making the container's init a direct child of
// berth-runc, and reports that pid (message 'P'); the intermediate exits.
// Errors come back as message 'E' with the reason.
//
// With "cinit", the process that would continue into Go instead reads one
// more message, 'X' with the plan (package runtime documents its format),
// and runs it in C: it builds the root filesystem, reports ready, waits on
// the exec fifo and execs the user's program without the Go runtime ever
// starting (cinit.c). Each message is one type
// byte, a 4-byte little-endian length, and the payload.
//
// Import this package for its side effect from the binary's main package only.
package nsenter

// #cgo CFLAGS: -Wall -O2
import "C"
