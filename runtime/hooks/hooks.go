// Package hooks runs OCI lifecycle hooks (prestart, createRuntime,
// createContainer, startContainer, poststart, poststop) for berth-runc.
//
// It owns only the running of one list of hooks: the process each hook gets
// (argv, environment, the container state on stdin), its time limit, and the
// error a failing hook turns into. Which list runs when, in which namespace,
// and whether a failure aborts the container is the runtime's business.
//
// Differences from runc, on purpose: a hook without "env" gets an empty
// environment, as the runtime spec defines env to be the whole environment
// (runc lets such hooks inherit its own); a hook that times out is killed
// with its whole process group, so a shell script's children do not outlive
// it; and a hook path must be absolute, as the spec requires.
//
// The package is a leaf: it must never import other berth packages.
package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrTimeout is matched (errors.Is) by the error of a hook killed for
// exceeding its timeout.
var ErrTimeout = errors.New("timed out")

// maxStderr is how much of a failing hook's stderr an error carries.
const maxStderr = 1024

// pipeGrace bounds how long Run waits, after a hook exits, for processes it
// left behind to close its stderr.
const pipeGrace = 2 * time.Second

// Error is the error of a hook that could not be started, failed or timed
// out.
type Error struct {
	Kind   string // e.g. "prestart"
	Path   string // the hook's path
	Stderr string // the end of the hook's stderr, trimmed, at most 1 KiB
	Err    error  // the cause: an *exec.ExitError, ErrTimeout, a start error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s hook %s: %v", e.Kind, e.Path, e.Err)
	if e.Stderr != "" {
		msg += ": stderr: " + e.Stderr
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs hooks in order, each with the container state as JSON on stdin,
// hook.Args as argv (Args[0] is argv0; empty Args -> argv = [Path]), hook.Env
// as the whole environment, and hook.Timeout seconds (nil = no timeout; <=0
// invalid). A non-zero exit, a timeout (kill the hook) or a start failure
// returns an error naming the hook kind, path and its stderr (trimmed, at most
// 1 KiB). kind is e.g. "prestart", used in errors.
//
// Run stops at the first failing hook; the hooks are all checked for
// validity before any of them runs. The error is an *Error.
func Run(kind string, hooks []specs.Hook, state *specs.State) error {
	for _, h := range hooks {
		if err := validate(h); err != nil {
			return &Error{Kind: kind, Path: h.Path, Err: err}
		}
	}
	if len(hooks) == 0 {
		return nil
	}
	input, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("%s hooks: encode container state: %w", kind, err)
	}
	for _, h := range hooks {
		if err := runOne(h, input); err != nil {
			err.Kind = kind
			return err
		}
	}
	return nil
}

func validate(h specs.Hook) error {
	if h.Path == "" {
		return errors.New("empty path")
	}
	if !filepath.IsAbs(h.Path) {
		return errors.New("path is not absolute")
	}
	if h.Timeout != nil && *h.Timeout <= 0 {
		return fmt.Errorf("invalid timeout %d: must be a positive number of seconds", *h.Timeout)
	}
	return nil
}

func runOne(h specs.Hook, input []byte) *Error {
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	env := h.Env
	if env == nil {
		env = []string{} // nil would mean "inherit" to os/exec
	}
	stderr := &tailBuffer{max: maxStderr}
	cmd := &exec.Cmd{
		Path:      h.Path,
		Args:      args,
		Env:       env,
		Stdin:     bytes.NewReader(input),
		Stderr:    stderr,
		WaitDelay: pipeGrace,
	}
	newProcessGroup(cmd)
	fail := func(err error) *Error {
		return &Error{Path: h.Path, Stderr: stderr.String(), Err: err}
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var timeout <-chan time.Time
	if h.Timeout != nil {
		timer := time.NewTimer(time.Duration(*h.Timeout) * time.Second)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
			return fail(err)
		}
		return nil
	case <-timeout:
		killProcessGroup(cmd)
		<-done
		return fail(fmt.Errorf("%w after %ds", ErrTimeout, *h.Timeout))
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	lost bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.lost = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(string(b.buf))
	if !b.lost {
		return strings.ToValidUTF8(s, "")
	}
	// Mark the cut, staying within max bytes.
	const mark = "..."
	if len(s) > b.max-len(mark) {
		s = s[len(s)-(b.max-len(mark)):]
	}
	return mark + strings.ToValidUTF8(s, "")
}
