// Command enginebench measures the berth engine against Docker and Podman
// on one host, side by side in one run: container start (issue 5), 100
// detached containers, the supervisor's memory, image pull and load (issue
// 4), and iperf3 throughput over berth's bridge and published ports
// (issue 6). It starts its own dockerd, registry and podman configuration
// under a berth-bench-* temporary directory and removes everything at the
// end. `make bench-engine` runs it; -h lists the flags.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(1)
	}
}
