package console

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

const helperEnv = "BERTH_CONSOLE_TEST_HELPER"

func TestMain(m *testing.M) {
	if slave := os.Getenv(helperEnv); slave != "" {
		os.Exit(setupSlaveHelper(slave))
	}
	os.Exit(m.Run())
}

// setupSlaveHelper runs in a child process: it attaches itself to the slave
// and reports, through the terminal, what a shell would see.
func setupSlaveHelper(slave string) int {
	if err := SetupSlave(slave); err != nil {
		fmt.Fprintf(os.Stderr, "setup slave: %v\n", err)
		return 1
	}
	var links []string
	for fd := 0; fd <= 2; fd++ {
		l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		links = append(links, l)
	}
	sid, _ := unix.Getsid(0)
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		fmt.Printf("tiocgpgrp: %v\n", err)
		return 1
	}
	fmt.Printf("fds=%s sid-is-pid=%t fg-is-pid=%t\n", strings.Join(links, ","), sid == os.Getpid(), fg == os.Getpid())
	return 0
}

func newPty(t *testing.T) (*os.File, string) {
	t.Helper()
	master, slavePath, err := NewPty("/dev/ptmx")
	if err != nil {
		t.Fatalf("NewPty: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	return master, slavePath
}

func openSlave(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open slave: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func socketpair(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "sock-a"), os.NewFile(uintptr(fds[1]), "sock-b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// readN reads exactly n bytes from r, failing the test after a timeout.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	ch := make(chan res, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		ch <- res{b, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("read %d bytes: %v", n, r.err)
		}
		return string(r.b)
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out reading %d bytes", n)
		return ""
	}
}

func TestNewPtySlavePath(t *testing.T) {
	master, slavePath := newPty(t)
	if !regexp.MustCompile(`^/dev/pts/[0-9]+$`).MatchString(slavePath) {
		t.Fatalf("slave path %q is not /dev/pts/N", slavePath)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/dev/pts/" + strconv.Itoa(int(n)); slavePath != want {
		t.Fatalf("slave path %q, pty number says %q", slavePath, want)
	}
	// Unlocked: the slave opens.
	openSlave(t, slavePath)
}

func TestNewPtyBadPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ptmx")
	_, _, err := NewPty(missing)
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("NewPty(%s) error = %v, want ENOENT naming the path", missing, err)
	}
	_, _, err = NewPty("/dev/null")
	if err == nil {
		t.Fatal("NewPty(/dev/null) succeeded")
	}
}

// TestPassMasterOverSocket is the console-socket round trip: a pty pair is
// made, the master travels over a socketpair, and the receiver talks to the
// slave through the received fd.
func TestPassMasterOverSocket(t *testing.T) {
	master, slavePath := newPty(t)
	slave := openSlave(t, slavePath)
	send, recv := socketpair(t)

	if err := SendFd(send, master.Name(), master); err != nil {
		t.Fatalf("SendFd: %v", err)
	}
	// The sender's copy is not needed any more, as in runc.
	want, _ := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	master.Close()

	got, err := RecvFd(recv)
	if err != nil {
		t.Fatalf("RecvFd: %v", err)
	}
	defer got.Close()
	if got.Name() != "/dev/ptmx" {
		t.Errorf("received name %q, want /dev/ptmx", got.Name())
	}
	if n, err := unix.IoctlGetUint32(int(got.Fd()), unix.TIOCGPTN); err != nil || n != want {
		t.Fatalf("received fd is pty %d (err %v), want %d", n, err, want)
	}
	flags, err := unix.FcntlInt(got.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd flags %#x (err %v), want close-on-exec", flags, err)
	}

	// Container output reaches the receiver; the default line discipline
	// turns \n into \r\n.
	if _, err := slave.WriteString("hello\n"); err != nil {
		t.Fatal(err)
	}
	if s := readN(t, got, 7); s != "hello\r\n" {
		t.Fatalf("master read %q, want %q", s, "hello\r\n")
	}
	if err := ClearONLCR(got); err != nil {
		t.Fatal(err)
	}
	slave.WriteString("raw\n")
	if s := readN(t, got, 4); s != "raw\n" {
		t.Fatalf("after ClearONLCR master read %q, want %q", s, "raw\n")
	}

	// Input typed on the receiver reaches the container as a line (and is
	// echoed back).
	got.WriteString("ping\n")
	line, err := bufio.NewReader(slave).ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("slave read %q (err %v), want %q", line, err, "ping\n")
	}
	if s := readN(t, got, 5); s != "ping\n" {
		t.Fatalf("echo %q, want %q", s, "ping\n")
	}
}

func TestRecvFdErrors(t *testing.T) {
	t.Run("peer closes", func(t *testing.T) {
		send, recv := socketpair(t)
		send.Close()
		if _, err := RecvFd(recv); err == nil {
			t.Fatal("RecvFd succeeded on a closed peer")
		}
	})
	t.Run("no fd", func(t *testing.T) {
		send, recv := socketpair(t)
		send.WriteString("/dev/ptmx")
		_, err := RecvFd(recv)
		if err == nil || !strings.Contains(err.Error(), "no file descriptor") {
			t.Fatalf("RecvFd error = %v, want no file descriptor", err)
		}
	})
	t.Run("two fds", func(t *testing.T) {
		send, recv := socketpair(t)
		before := countFds(t)
		oob := unix.UnixRights(int(os.Stdin.Fd()), int(os.Stdout.Fd()))
		if err := unix.Sendmsg(int(send.Fd()), []byte("x"), oob, nil, 0); err != nil {
			t.Fatal(err)
		}
		_, err := RecvFd(recv)
		if err == nil || !strings.Contains(err.Error(), "got 2") {
			t.Fatalf("RecvFd error = %v, want a complaint about 2 fds", err)
		}
		if after := countFds(t); after != before {
			t.Fatalf("fd count %d -> %d: received fds leaked", before, after)
		}
	})
}

func countFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestSendFdEmptyNameUsesFileName(t *testing.T) {
	master, _ := newPty(t)
	send, recv := socketpair(t)
	if err := SendFd(send, "", master); err != nil {
		t.Fatal(err)
	}
	got, err := RecvFd(recv)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Name() != master.Name() {
		t.Fatalf("name %q, want %q", got.Name(), master.Name())
	}
}

func TestSize(t *testing.T) {
	master, slavePath := newPty(t)
	slave := openSlave(t, slavePath)
	want := Size{Rows: 43, Cols: 132}
	if err := SetSize(master, want); err != nil {
		t.Fatal(err)
	}
	got, err := GetSize(slave)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("slave size %+v, want %+v", got, want)
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	if _, err := GetSize(devnull); !errors.Is(err, unix.ENOTTY) {
		t.Fatalf("GetSize(/dev/null) error = %v, want ENOTTY", err)
	}
}

func TestMakeRawAndRestore(t *testing.T) {
	master, slavePath := newPty(t)
	slave := openSlave(t, slavePath)
	if !IsTerminal(slave) || !IsTerminal(master) {
		t.Fatal("IsTerminal does not recognise the pty pair")
	}
	restore, err := MakeRaw(slave)
	if err != nil {
		t.Fatal(err)
	}
	// Raw: no output processing and no echo.
	slave.WriteString("a\n")
	if s := readN(t, master, 2); s != "a\n" {
		t.Fatalf("raw output %q, want %q", s, "a\n")
	}
	master.WriteString("q")
	if s := readN(t, slave, 1); s != "q" {
		t.Fatalf("raw input %q, want q without waiting for a newline", s)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ICANON == 0 || tio.Lflag&unix.ECHO == 0 || tio.Oflag&unix.OPOST == 0 {
		t.Fatalf("termios not restored: lflag %#x oflag %#x", tio.Lflag, tio.Oflag)
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	if IsTerminal(devnull) {
		t.Fatal("/dev/null reported as a terminal")
	}
}

// TestSetupSlave starts a process that makes the slave its controlling
// terminal and stdio, then checks, through the master, what it reports.
func TestSetupSlave(t *testing.T) {
	master, slavePath := newPty(t)
	if err := ClearONLCR(master); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+slavePath)
	cmd.Stderr = &stderr // replaced by the slave inside the helper
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 1)
	go func() {
		// Read until the helper exits and the slave hangs up (EIO).
		b, _ := io.ReadAll(master)
		out <- string(b)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, stderr.String())
	}
	var got string
	select {
	case got = <-out:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out reading the helper's terminal output")
	}
	want := fmt.Sprintf("fds=%s,%s,%s sid-is-pid=true fg-is-pid=true\n", slavePath, slavePath, slavePath)
	if got != want {
		t.Fatalf("helper reported %q, want %q", got, want)
	}
}

// TestNewPtyPrivateDevpts builds the /dev layout a container gets (a private
// devpts instance on dev/pts and dev/ptmx -> pts/ptmx) and checks that NewPty
// resolves slaves inside that instance, whichever path it is given.
func TestNewPtyPrivateDevpts(t *testing.T) {
	testutil.RequireRoot(t, "it mounts a devpts instance")
	dev := filepath.Join(t.TempDir(), "berth-dev")
	pts := filepath.Join(dev, "pts")
	if err := os.MkdirAll(pts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		t.Fatalf("mount devpts: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(pts, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", pts, err)
		}
	})
	if err := os.Symlink("pts/ptmx", filepath.Join(dev, "ptmx")); err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{filepath.Join(dev, "ptmx"), filepath.Join(pts, "ptmx")} {
		master, slavePath, err := NewPty(path)
		if err != nil {
			t.Fatalf("NewPty(%s): %v", path, err)
		}
		defer master.Close()
		// A fresh instance numbers its ptys from 0.
		if want := filepath.Join(pts, strconv.Itoa(i)); slavePath != want {
			t.Fatalf("NewPty(%s) slave %q, want %q", path, slavePath, want)
		}
		slave := openSlave(t, slavePath)
		slave.WriteString("x")
		if s := readN(t, master, 1); s != "x" {
			t.Fatalf("master read %q, want x", s)
		}
	}
}
