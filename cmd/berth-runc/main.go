// Command berth-runc is berth's OCI runtime, usable wherever runc is.
package main

import (
	"os"

	"github.com/berth-project/berth/internal/runccli"
	"github.com/berth-project/berth/runtime"
	_ "github.com/berth-project/berth/runtime/nsenter" // joins namespaces before the Go runtime starts
)

func main() {
	if runtime.IsInit() {
		runtime.Init() // never returns
	}
	os.Exit(runccli.Main(os.Args[1:]))
}
