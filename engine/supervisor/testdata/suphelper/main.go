// Command suphelper is the supervisor tests' stand-in for the berth binary:
// it links package supervisor (so the supervisor constructor is in it) and
// offers the helpers the tests' callback scripts need.
//
//	suphelper pty-run CONSOLE_SOCKET PIDFILE CMD [ARG...]
//	    run CMD on a new pty as its controlling terminal, write its pid,
//	    send the master to CONSOLE_SOCKET (as an OCI runtime does) and exit.
//	suphelper bg PIDFILE CMD [ARG...]
//	    start CMD with this process's stdio (descriptors 0-2 only, as an
//	    OCI runtime hands them to the container), write its pid, exit.
//	suphelper spawn DIR CONFIG_JSON
//	    play the engine: Spawn a supervisor for DIR, print its pid, sleep.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/berth-project/berth/engine/supervisor"
	"github.com/berth-project/berth/runtime/console"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "suphelper:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command")
	}
	switch args[0] {
	case "pty-run":
		if len(args) < 4 {
			return fmt.Errorf("usage: pty-run SOCKET PIDFILE CMD...")
		}
		return ptyRun(args[1], args[2], args[3:])
	case "bg":
		if len(args) < 3 {
			return fmt.Errorf("usage: bg PIDFILE CMD...")
		}
		cmd := exec.Command(args[2], args[3:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		return os.WriteFile(args[1], []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	case "spawn":
		if len(args) != 3 {
			return fmt.Errorf("usage: spawn DIR CONFIG_JSON")
		}
		var cfg supervisor.Config
		if err := json.Unmarshal([]byte(args[2]), &cfg); err != nil {
			return err
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		pid, err := supervisor.Spawn(args[1], cfg, self)
		if err != nil {
			return err
		}
		fmt.Println(pid)
		time.Sleep(time.Hour)
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func ptyRun(sock, pidfile string, argv []string) error {
	master, slavePath, err := console.NewPty("/dev/ptmx")
	if err != nil {
		return err
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		return err
	}
	slave.Close()
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		return err
	}
	c.Close()
	defer f.Close()
	return console.SendFd(f, master.Name(), master)
}
