package runccli

import (
	"os"
	"os/signal"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime"
)

func runCmd() *cobra.Command {
	var f createFlags
	var detach, keep, noSubreaper bool
	cmd := &cobra.Command{
		Use:   "run [flags] <container-id>",
		Short: "create and run a container",
		Args:  requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Signals arriving while we create go to the container once it runs.
			sigs := make(chan os.Signal, 32)
			if !detach {
				// Registering costs ~0.6 ms (the runtime starts its signal
				// thread): overlap it with the work below.
				go signal.Notify(sigs, forwarded...)
				defer signal.Stop(sigs)
			}
			c, err := doCreate(args[0], &f)
			if err != nil {
				return err
			}
			if err := c.Start(); err != nil {
				c.Delete(true)
				return err
			}
			if detach {
				return nil
			}
			code := waitForward(c.Pid(), sigs)
			runtime.Trace("run: exited")
			if keep {
				c.SetExitStatus(code)
			} else if err := c.Delete(true); err != nil {
				logError(err)
			}
			runtime.Trace("run: deleted")
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
	fl.BoolVar(&keep, "keep", false, "do not delete the container after it exits")
	fl.BoolVar(&noSubreaper, "no-subreaper", false, "disable the use of the subreaper used to reap reparented processes")
	return cmd
}

// forwarded are the signals run and exec pass on to the container.
// (Asking Go for every signal costs milliseconds at start-up.)
var forwarded = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGWINCH,
}

// waitForward waits for pid (our child) to exit, passing on the signals we
// receive, and returns its exit code as a shell reports it.
func waitForward(pid int, sigs chan os.Signal) int {
	done := make(chan int, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			break
		}
		if ws.Signaled() {
			done <- 128 + int(ws.Signal())
			return
		}
		done <- ws.ExitStatus()
	}()
	for {
		select {
		case code := <-done:
			return code
		case s := <-sigs:
			sig, ok := s.(unix.Signal)
			if !ok || sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE || sig == unix.SIGWINCH {
				continue
			}
			unix.Kill(pid, sig)
		}
	}
}
