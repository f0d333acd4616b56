//go:build linux && !amd64 && !arm64

package main

import "errors"

// On other architectures the memory pass reads peaks at exit only.
const sysKcmp = ^uintptr(0) // makes sameVM fail closed (ENOSYS)

func syscallNumber(int) (uint64, error) {
	return 0, errors.New("syscall numbers are not decoded on this architecture")
}

func isExecve(uint64) bool { return false }
