// Command berth is the container engine's command line: Docker's commands,
// no daemon. The same binary is the container init (re-executed by the
// runtime library) and the per-container supervisor (a C constructor that
// runs before the Go runtime starts).
package main

import (
	"os"

	_ "github.com/berth-project/berth/engine/initd"      // berth-init, for run --init
	_ "github.com/berth-project/berth/engine/supervisor" // the supervisor, run before the Go runtime when asked
	"github.com/berth-project/berth/internal/cli"
	"github.com/berth-project/berth/runtime"
	_ "github.com/berth-project/berth/runtime/nsenter" // joins namespaces before the Go runtime starts
)

func main() {
	if runtime.IsInit() {
		runtime.Init() // never returns
	}
	os.Exit(cli.Main(os.Args[1:]))
}
