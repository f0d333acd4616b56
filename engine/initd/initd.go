// Package initd is the init `berth run --init` runs in a container (see
// initd.c): linking it into the berth binary installs a constructor that,
// when the binary runs as "berth-init", forwards signals to the command,
// reaps zombies and exits with the command's status, without starting the
// Go runtime.
package initd

// #cgo CFLAGS: -Wall -Wextra -O2
import "C"

// Name is the binary name that selects the init.
const Name = "berth-init"
