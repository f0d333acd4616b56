package runtime

import (
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Messages between berth-runc and its init process over the init socket:
// one type byte, a 4-byte little-endian length, and the payload. The first
// messages from the child come from the nsenter constructor.
const (
	msgPid      = 'P' // nsenter: int32 pid of the container process
	msgError    = 'E' // error text; the child exits after sending it
	msgUserns   = 'U' // nsenter: write my id maps, then answer msgUsernsOK
	msgHooks    = 'H' // init: run createRuntime and prestart hooks now, then answer msgHooksDone
	msgReady    = 'R' // init: created, now waiting for start
	msgConfig   = 'C' // parent: the init configuration (JSON)
	msgHooksRan = 'h'
	msgCgroup   = 'G' // parent: the process is in its cgroup now
	msgRunning  = 'M' // init: the Go runtime is up (its threads exist)
)

// fdIO does blocking reads and writes on a raw descriptor; the init process
// uses it so the Go runtime never creates an epoll descriptor there.
type fdIO int

func (f fdIO) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f fdIO) Write(p []byte) (int, error) {
	total := 0
	for total < len(p) {
		n, err := unix.Write(int(f), p[total:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func writeMsg(w io.Writer, typ byte, payload []byte) error {
	hdr := make([]byte, 5, 5+len(payload))
	hdr[0] = typ
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(payload)))
	_, err := w.Write(append(hdr, payload...))
	return err
}

func readMsg(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if n > 16<<20 {
		return 0, nil, fmt.Errorf("init message too large (%d bytes)", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}
