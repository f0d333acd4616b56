package cgroups

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNoMemoryController: the host has no memory controller for the group,
// so OOM kills can be neither counted nor watched.
var ErrNoMemoryController = errors.New("no memory cgroup controller")

// OOMKillCount returns how many processes the kernel's OOM killer has
// killed in the container's cgroup and the groups below it (v1: the
// oom_kill field of memory.oom_control, summed over the subtree, as v1
// counts a kill only in the victim's own group; v2: oom_kill of the
// hierarchical memory.events).
func (m *Manager) OOMKillCount() (uint64, error) {
	if m.Unified() {
		dir := m.paths[""]
		n, ok, err := eventCount(filepath.Join(dir, "memory.events"), "oom_kill")
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("cgroup %s: %w", dir, ErrNoMemoryController)
		}
		return n, nil
	}
	dir, found := m.v1("memory")
	if !found {
		return 0, ErrNoMemoryController
	}
	var total uint64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		n, ok, err := eventCount(filepath.Join(p, "memory.oom_control"), "oom_kill")
		if err != nil {
			if p != dir && errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !ok && p == dir {
			return fmt.Errorf("%s has no oom_kill counter (kernel older than 4.13)", filepath.Join(p, "memory.oom_control"))
		}
		total += n
		return nil
	})
	return total, err
}

// eventCount reads one field of a "key value" per line file; ok is false
// when the file has no such field.
func eventCount(path, key string) (n uint64, ok bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && filepath.Base(path) == "memory.events" {
			if _, serr := os.Stat(filepath.Dir(path)); serr == nil {
				return 0, false, nil
			}
		}
		return 0, false, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		v, found := bytes.CutPrefix(line, []byte(key+" "))
		if !found {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %s: %w", path, key, err)
		}
		return n, true, nil
	}
	return 0, false, nil
}

// NotifyOOM watches the container's cgroup for OOM events: the channel
// receives a value each time the kernel reports one, and is closed when
// ctx ends or the cgroup is removed. On v1 an event is every OOM
// condition of the group (cgroup.event_control with an eventfd on
// memory.oom_control, as runc does); on v2 it is every rise of
// memory.events' oom_kill (inotify on memory.events).
func (m *Manager) NotifyOOM(ctx context.Context) (<-chan struct{}, error) {
	if m.Unified() {
		dir := m.paths[""]
		if !exists(dir, "memory.events") {
			return nil, fmt.Errorf("cgroup %s: %w", dir, ErrNoMemoryController)
		}
		return watchMemoryEvents(ctx, dir)
	}
	dir, ok := m.v1("memory")
	if !ok {
		return nil, ErrNoMemoryController
	}
	return notifyOOMV1(ctx, dir)
}

func notifyOOMV1(ctx context.Context, dir string) (<-chan struct{}, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ocPath := filepath.Join(dir, "memory.oom_control")
	ofd, err := unix.Open(ocPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("open %s: %w", ocPath, err)
	}
	// The kernel keeps the registration until the eventfd is closed or
	// the group is removed; it needs memory.oom_control open only now.
	err = os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(fmt.Sprintf("%d %d", efd, ofd)), 0)
	unix.Close(ofd)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("register OOM notification: %w", err)
	}
	return fdEvents(ctx, efd, "oom-eventfd", func(f *os.File, send func() bool) {
		buf := make([]byte, 8)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			// The eventfd also fires when the group is removed.
			if _, err := os.Stat(ocPath); err != nil {
				return
			}
			for range binary.NativeEndian.Uint64(buf) {
				if !send() {
					return
				}
			}
		}
	}), nil
}

// watchMemoryEvents watches dir/memory.events with inotify and sends one
// value per OOM kill (rise of its oom_kill field).
func watchMemoryEvents(ctx context.Context, dir string) (<-chan struct{}, error) {
	path := filepath.Join(dir, "memory.events")
	last, _, err := eventCount(path, "oom_kill")
	if err != nil {
		return nil, err
	}
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(ifd, path, unix.IN_MODIFY); err != nil {
		unix.Close(ifd)
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	return fdEvents(ctx, ifd, "oom-inotify", func(f *os.File, send func() bool) {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			gone := false
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := binary.NativeEndian.Uint32(buf[off+12:])
				if mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF) != 0 {
					gone = true
				}
				off += unix.SizeofInotifyEvent + int(nameLen)
			}
			cur, _, err := eventCount(path, "oom_kill")
			if err != nil {
				return
			}
			for ; last < cur; last++ {
				if !send() {
					return
				}
			}
			if gone {
				return
			}
		}
	}), nil
}

// fdEvents runs watch on a goroutine of its own with fd (non-blocking) as
// a file, and returns the channel that watch's send puts a value on; send
// reports false once ctx has ended. The file is closed when ctx ends or
// watch returns, and the channel when watch returns. A non-blocking fd
// given to os.NewFile goes through the runtime's poller, so the Close on
// ctx's end wakes a pending Read.
func fdEvents(ctx context.Context, fd int, name string, watch func(f *os.File, send func() bool)) <-chan struct{} {
	f := os.NewFile(uintptr(fd), name)
	ch := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		f.Close()
	}()
	go func() {
		defer close(ch)
		defer close(stop)
		watch(f, func() bool {
			select {
			case ch <- struct{}{}:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return ch
}
