// Package console owns the terminals of berth-runc containers: it opens a
// pseudo-terminal pair, makes the slave the controlling terminal of the
// container's init process, and hands the master to whoever asked for it over
// a unix socket.
//
// The hand-over follows runc's --console-socket protocol, so tools written for
// runc (containerd shims, conmon, podman, runc's recvtty) can receive berth's
// terminals unchanged: the runtime connects to the socket, sends exactly one
// message whose payload is the master's name and whose ancillary data carries
// the master fd as SCM_RIGHTS, and closes its copy.
//
// The package is a leaf: it depends only on the standard library and
// golang.org/x/sys/unix and must never import other berth packages.
package console

// Size is a terminal window size in character cells.
type Size struct {
	Rows uint16
	Cols uint16
}
