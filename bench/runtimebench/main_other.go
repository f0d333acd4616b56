//go:build !linux

// Command runtimebench compares OCI runtimes on Linux; see main.go.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "runtimebench: OCI runtimes run only on Linux")
	os.Exit(1)
}
