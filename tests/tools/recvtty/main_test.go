package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/runtime/console"
)

// waitFile waits for recvtty's pid file, which it writes once listening.
func waitFile(t *testing.T, path string, errc <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case err := <-errc:
			t.Fatalf("recvtty ended before listening: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not appear", path)
}

// sendPty plays the runtime's part: it makes a pty, sends its master to the
// socket and returns the slave.
func sendPty(t *testing.T, socket string) *os.File {
	t.Helper()
	master, slavePath, err := console.NewPty("/dev/ptmx")
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatalf("dial %s: %v", socket, err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := console.SendFd(f, master.Name(), master); err != nil {
		t.Fatal(err)
	}
	return slave
}

func TestSingleMode(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "berth-console.sock")
	pidFile := filepath.Join(dir, "recvtty.pid")
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(context.Background(), []string{"--mode", "single", "--pid-file", pidFile, socket}, stdinR, stdoutW)
		stdoutW.Close()
	}()
	waitFile(t, pidFile, errc)

	slave := sendPty(t, socket)
	out := bufio.NewReader(stdoutR)

	// Container output appears on recvtty's stdout.
	slave.WriteString("from the container\n")
	line, err := out.ReadString('\n')
	if err != nil || line != "from the container\r\n" {
		t.Fatalf("stdout line %q (err %v), want %q", line, err, "from the container\r\n")
	}

	// recvtty's stdin reaches the container.
	go stdinW.Write([]byte("typed\n"))
	in, err := bufio.NewReader(slave).ReadString('\n')
	if err != nil || in != "typed\n" {
		t.Fatalf("container read %q (err %v), want %q", in, err, "typed\n")
	}
	stdinW.Close() // the end of stdin does not end the session
	if line, _ := out.ReadString('\n'); line != "typed\r\n" {
		t.Fatalf("echo %q, want %q", line, "typed\r\n")
	}
	slave.WriteString("still here\n")
	if line, _ := out.ReadString('\n'); line != "still here\r\n" {
		t.Fatalf("after stdin EOF stdout %q, want %q", line, "still here\r\n")
	}

	// The container closing its terminal ends recvtty cleanly.
	slave.Close()
	go io.Copy(io.Discard, out)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("recvtty: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("recvtty did not end after the terminal closed")
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind (stat err %v)", err)
	}
}

func TestNullModeDrainsManyTerminals(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "berth-console.sock")
	pidFile := filepath.Join(dir, "recvtty.pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"--mode=null", "--pid-file", pidFile, socket}, nil, io.Discard) }()
	waitFile(t, pidFile, errc)

	// Far more than a pty buffers: the writes finish only if drained.
	big := []byte(strings.Repeat("x", 1<<20))
	for i := 0; i < 3; i++ {
		slave := sendPty(t, socket)
		done := make(chan error, 1)
		go func() { _, err := slave.Write(big); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("terminal %d: write: %v", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("terminal %d: 1 MiB write blocked; recvtty is not draining", i)
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("recvtty: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("recvtty did not stop")
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind (stat err %v)", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--mode", "bogus", "sock"},
		{"a", "b"},
		{"--nope", "sock"},
	} {
		if err := run(context.Background(), args, nil, io.Discard); err == nil {
			t.Errorf("recvtty %q succeeded", args)
		}
	}
}

// TestBinarySIGTERM runs the built command as the integration tests do and
// checks that SIGTERM ends it with status 0 and removes the socket.
func TestBinarySIGTERM(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "recvtty")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	socket := filepath.Join(dir, "berth-console.sock")
	pidFile := filepath.Join(dir, "recvtty.pid")
	cmd := exec.Command(bin, "--mode", "null", "--pid-file", pidFile, socket)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waitFile(t, pidFile, exited)
	sendPty(t, socket).WriteString("hello\n")
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("recvtty exited with %v: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("recvtty ignored SIGTERM")
	}
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind (stat err %v)", err)
	}
}
