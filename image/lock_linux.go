package image

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// flockPath opens path (creating it) and takes a flock of kind how on it,
// waiting until ctx ends or timeout passes. When wait is false it gives up
// at once and returns (nil, nil) if the lock is held.
func flockPath(ctx context.Context, path string, how int, timeout time.Duration, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, err
		}
		if !wait {
			f.Close()
			return nil, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errors.New("timed out waiting for another berth process")
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

func lockShared(ctx context.Context, path string, timeout time.Duration) (*os.File, error) {
	return flockPath(ctx, path, unix.LOCK_SH, timeout, true)
}

func lockExclusive(ctx context.Context, path string, timeout time.Duration, wait bool) (*os.File, error) {
	return flockPath(ctx, path, unix.LOCK_EX, timeout, wait)
}
