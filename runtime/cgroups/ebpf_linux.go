package cgroups

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The bpf(2) attribute layouts used here (union bpf_attr members).
type bpfProgLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
	progName    [16]byte
}

type bpfAttachAttr struct {
	targetFd    uint32
	attachBpfFd uint32
	attachType  uint32
	attachFlags uint32
}

type bpfQueryAttr struct {
	targetFd    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           uint32
}

type bpfGetFdAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// loadDeviceProgram loads prog into the kernel and returns its fd. On a
// verifier rejection the error carries the verifier's log.
func loadDeviceProgram(prog []insn) (int, error) {
	code := encode(prog)
	license := []byte("Apache-2.0\x00")
	attr := bpfProgLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    uint64(uintptr(unsafe.Pointer(&code[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:], "berth_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	if err == nil {
		return int(fd), nil
	}
	if err == unix.EINVAL || err == unix.EACCES {
		log := make([]byte, 64<<10)
		attr.logLevel, attr.logSize = 1, uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		fd2, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(code)
		runtime.KeepAlive(license)
		runtime.KeepAlive(log)
		if err2 == nil {
			return int(fd2), nil
		}
		n := 0
		for n < len(log) && log[n] != 0 {
			n++
		}
		return -1, fmt.Errorf("load eBPF device program: %w: %s", err, log[:n])
	}
	return -1, fmt.Errorf("load eBPF device program: %w", err)
}

// attachedDevicePrograms lists the ids of the device programs attached to
// the cgroup directly.
func attachedDevicePrograms(cgfd int) ([]uint32, error) {
	ids := make([]uint32, 64)
	for {
		attr := bpfQueryAttr{
			targetFd:   uint32(cgfd),
			attachType: unix.BPF_CGROUP_DEVICE,
			progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
			progCnt:    uint32(len(ids)),
		}
		_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(ids)
		if err == unix.ENOSPC {
			ids = make([]uint32, 2*len(ids))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("query eBPF device programs: %w", err)
		}
		return ids[:attr.progCnt], nil
	}
}

// setDeviceFilter attaches the filter for state s to the v2 cgroup dir,
// replacing the device programs attached there before. Programs are
// attached with BPF_F_ALLOW_MULTI, so a container may add its own filters
// below (nested containers), and they all must allow an access.
func setDeviceFilter(dir string, s *devState) error {
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(cg)
	old, err := attachedDevicePrograms(cg)
	if err != nil {
		return err
	}
	prog, err := loadDeviceProgram(deviceProgram(s))
	if err != nil {
		return err
	}
	defer unix.Close(prog)
	attach := bpfAttachAttr{
		targetFd:    uint32(cg),
		attachBpfFd: uint32(prog),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		return fmt.Errorf("attach eBPF device program to %s: %w", dir, err)
	}
	var errs []error
	for _, id := range old {
		get := bpfGetFdAttr{id: id}
		fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
		if err != nil {
			if err == unix.ENOENT {
				continue
			}
			errs = append(errs, fmt.Errorf("open eBPF program %d: %w", id, err))
			continue
		}
		detach := bpfAttachAttr{targetFd: uint32(cg), attachBpfFd: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE}
		if _, err := bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&detach), unsafe.Sizeof(detach)); err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("detach old eBPF device program %d from %s: %w", id, dir, err))
		}
		unix.Close(int(fd))
	}
	return errors.Join(errs...)
}

// devicePrograms returns how many device programs are attached to dir
// itself (for tests and diagnostics).
func devicePrograms(dir string) (int, error) {
	cg, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(cg)
	ids, err := attachedDevicePrograms(cg)
	return len(ids), err
}
