package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/moby/moby/api/types/container"
)

// HealthCheck runs the container's health check once (the supervisor
// calls it, `berth __health ID`, every interval and kills it after the
// timeout) and records the result as Docker does: the last five results,
// the failing streak, and unhealthy after Retries failures in a row
// (failures during the start period do not count).
func (e *Engine) HealthCheck(ctx context.Context, id string) error {
	c, err := e.getRaw(id)
	if err != nil {
		return err
	}
	h := c.Config.Healthcheck
	if h == nil || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return fmt.Errorf("container %s has no health check", c.Name)
	}
	var cmd []string
	switch h.Test[0] {
	case "CMD":
		cmd = h.Test[1:]
	case "CMD-SHELL":
		shell := c.Config.Shell
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
		}
		cmd = append(append([]string{}, shell...), h.Test[1:]...)
	default:
		return fmt.Errorf("container %s: unknown health check type %q", c.Name, h.Test[0])
	}
	start := time.Now()
	out, code := e.runCapture(ctx, c, cmd)
	res := &container.HealthcheckResult{Start: start, End: time.Now(), ExitCode: code, Output: out}
	retries := h.Retries
	if retries == 0 {
		retries = 3
	}
	inStartPeriod := time.Since(c.State.StartedAt) < h.StartPeriod
	_, err = e.modify(id, func(c *Container) error {
		hs := c.State.Health
		if hs == nil {
			hs = &container.Health{Status: container.Starting}
			c.State.Health = hs
		}
		hs.Log = append(hs.Log, res)
		if len(hs.Log) > 5 {
			hs.Log = hs.Log[len(hs.Log)-5:]
		}
		if code == 0 {
			hs.Status, hs.FailingStreak = container.Healthy, 0
		} else if !inStartPeriod || hs.Status != container.Starting {
			hs.FailingStreak++
			if hs.FailingStreak >= retries {
				hs.Status = container.Unhealthy
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.event("container", "health_status: "+map[bool]string{true: "healthy", false: "unhealthy"}[code == 0], c, nil)
	if code != 0 {
		return fmt.Errorf("health check failed with exit code %d", code)
	}
	return nil
}

// runCapture runs cmd in the container and returns its combined output
// (at most 4 KiB, as Docker keeps) and exit code.
func (e *Engine) runCapture(ctx context.Context, c *Container, cmd []string) (string, int) {
	r, w, err := os.Pipe()
	if err != nil {
		return err.Error(), -1
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	p, err := e.Exec(ctx, c.ID, &ExecOptions{Cmd: cmd, Stdio: [3]*os.File{devnull, w, w}})
	w.Close()
	if err != nil {
		r.Close()
		return err.Error(), -1
	}
	var buf bytes.Buffer
	tmp := make([]byte, 4096)
	for {
		n, err := r.Read(tmp)
		if buf.Len() < 4096 {
			buf.Write(tmp[:min(n, 4096-buf.Len())])
		}
		if err != nil {
			break
		}
	}
	r.Close()
	code, err := p.Wait()
	if err != nil {
		return err.Error(), -1
	}
	return buf.String(), code
}
