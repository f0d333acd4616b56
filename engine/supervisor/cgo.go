package supervisor

// The supervisor itself is the C constructor in supervisor.c; compiling this
// package with cgo links it into the binary.

// #cgo CFLAGS: -Wall -Wextra -O2
import "C"
