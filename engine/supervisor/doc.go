// Package supervisor is berth's per-container supervisor (the role of
// Podman's conmon or containerd's shim) and the engine's client for it.
//
// # What runs
//
// The supervisor is C (supervisor.c, jsonlog.c) linked into the berth
// binary as a constructor that runs before the Go runtime starts: when the
// environment variable _BERTH_SUPERVISE names a container run directory D,
// the constructor supervises that container and _exits, so the Go runtime
// never starts and the supervisor stays well under a megabyte of memory for
// the container's whole life. In every other berth process the constructor
// costs one getenv. Importing this package (for the client API, or blank)
// links the constructor into a binary.
//
// Spawn writes D/supervisor.conf (see Config) and starts the supervisor in a
// new session. The supervisor:
//
//   - becomes a child subreaper, takes D/supervisor.lock, creates the
//     listening sockets D/attach.sock, D/ctl.sock and, with a terminal,
//     D/console.sock, and only then writes D/supervisor.pid atomically
//     ("<pid> <start time in clock ticks>");
//   - runs the start callback with the container's stdio as its descriptors
//     0, 1 and 2 (pipes; with a terminal: /dev/null, /dev/null and
//     D/start.err, and the OCI runtime sends the pty master to
//     D/console.sock) and D/start.err as descriptor 3, where the callback
//     writes its error message. The callback must not pass descriptor 3 on
//     to the container. It creates and starts the container, writes the
//     container init's host pid to D/pid and exits 0; the init is then
//     reparented to the supervisor, which reaps it. A non-zero exit is a
//     start failure: the exit record carries the callback's exit code and
//     D/start.err as the error;
//   - with Config.ClientStart (SpawnStarter), does not run the start
//     callback for the first start: the engine creates the container
//     itself and the supervisor only starts the process the engine asks
//     for (the runtime's init stage, Starter.Exec: the container's stdio
//     as 0-2, the engine's descriptors as 3, ..., cloned into new
//     namespaces), so that the container's init is the supervisor's
//     child. The engine then says Started (the init's pid) or Failed; if
//     its socket closes first (the engine died), the start failed: what
//     Exec started is killed. Restarts run the start callback;
//   - writes the container's stdout and stderr to a Docker json-file log
//     (lines split at '\n' and every 16 KiB, Docker's escaping and rotation)
//     and copies them to attached clients;
//   - when the container exits, drains its output, writes D/exit
//     atomically (see Exit), ends the attached clients' streams, runs the
//     cleanup callback with the exit code as an extra argument, and applies
//     the restart policy with Docker's back-off (100 ms doubling up to one
//     minute, reset after a run of 10 s) by running the start callback
//     again, or removes its sockets and pid file and exits;
//   - runs the health callback every interval after the start period (one
//     at a time, killed with its process group after the timeout) and keeps
//     the health status (Status.Health). The callback records results
//     itself.
//
// The engine may be killed at any moment: the supervisor does not depend
// on it. If the supervisor is killed, Alive reports it (the pid file's
// process is gone or is another process).
//
// # Attach protocol (D/attach.sock)
//
// The client sends one byte of flags (1 stdin, 2 stdout, 4 stderr); the
// supervisor answers one byte, 'M' (multiplexed stream follows) or 'T'
// (terminal: raw bytes follow). Without a terminal every chunk of output is
// framed as Docker's stdcopy does: stream byte (1 stdout, 2 stderr), three
// zero bytes, big-endian uint32 length, payload. Bytes from a client with
// the stdin flag go to the container's stdin (when OpenStdin); when the last
// such client closes its writing side and StdinOnce is set, the container's
// stdin is closed. At the end of a run the supervisor closes its writing
// side after the client has received all output. With WaitAttach the first
// handshake starts the container.
//
// # Control protocol (D/ctl.sock)
//
// One command line per connection, one reply line: "resize ROWS COLS" and
// "stop-requested" answer "ok" or "error <message>"; "status" answers a JSON
// object (Status). stop-requested means the user stops the container: no
// restart follows its exit (as Docker's stop cancels the restart manager),
// a pending restart is cancelled, and a supervisor still waiting for its
// first attach exits.
//
// This package imports only the standard library and golang.org/x/sys; the
// engine imports it, never the other way round.
package supervisor
