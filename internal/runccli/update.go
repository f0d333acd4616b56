package runccli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/runtime"
)

func updateCmd() *cobra.Command {
	var resources string
	cmd := &cobra.Command{
		Use:   "update [flags] <container-id>",
		Short: "update container resource constraints",
		Long: `update changes the resource limits of a running container.

With --resources (-r) FILE, or - for the standard input, the limits come
from a JSON document in the format of the runtime spec's linux.resources:

  {"memory": {"limit": 0, "reservation": 0, "swap": 0},
   "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
           "realtimePeriod": 0, "cpus": "", "mems": ""},
   "blockIO": {"weight": 0}, "pids": {"limit": 0}}

The flags below set single limits (and override the document's values).
Memory sizes take the suffixes k, m, g, t (powers of 1024).`,
		Args: requireArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := runtime.Load(g.root, args[0])
			if err != nil {
				return err
			}
			r := &specs.LinuxResources{}
			if resources != "" {
				var data []byte
				if resources == "-" {
					data, err = io.ReadAll(os.Stdin)
				} else {
					data, err = os.ReadFile(resources)
				}
				if err != nil {
					return fmt.Errorf("--resources: %w", err)
				}
				dec := json.NewDecoder(bytes.NewReader(data))
				if err := dec.Decode(r); err != nil {
					return fmt.Errorf("--resources: not linux.resources JSON: %w", err)
				}
			}
			if err := resourcesFromFlags(cmd.Flags(), r); err != nil {
				return err
			}
			return c.Update(r)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&resources, "resources", "r", "", "path to the file containing the resources to update or '-' to read from the standard input")
	f.Uint16("blkio-weight", 0, "Specifies per cgroup weight, range is from 10 to 1000")
	f.Uint64("cpu-period", 0, "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default")
	f.Int64("cpu-quota", 0, "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period")
	f.Uint64("cpu-burst", 0, "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period")
	f.Uint64("cpu-share", 0, "CPU shares (relative weight vs. other containers)")
	f.Uint64("cpu-shares", 0, "alias of --cpu-share")
	f.Uint64("cpu-rt-period", 0, "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default")
	f.Int64("cpu-rt-runtime", 0, "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period")
	f.Int64("cpu-idle", 0, "set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE")
	f.String("cpuset-cpus", "", "CPU(s) to use")
	f.String("cpuset-mems", "", "Memory node(s) to use")
	f.String("memory", "", "Memory limit (in bytes)")
	f.String("memory-reservation", "", "Memory reservation or soft_limit (in bytes)")
	f.String("memory-swap", "", "Total memory usage (memory + swap); set '-1' to enable unlimited swap")
	f.String("kernel-memory", "", "(obsoleted; do not use)")
	f.String("kernel-memory-tcp", "", "(obsoleted; do not use)")
	f.Int64("pids-limit", 0, "Maximum number of pids allowed in the container")
	f.String("l3-cache-schema", "", "The string of Intel RDT/CAT L3 cache schema (not supported)")
	f.String("mem-bw-schema", "", "The string of Intel RDT/MBA memory bandwidth schema (not supported)")
	return cmd
}

// resourcesFromFlags sets in r the limits given on the command line.
func resourcesFromFlags(f *pflag.FlagSet, r *specs.LinuxResources) error {
	for _, name := range []string{"l3-cache-schema", "mem-bw-schema"} {
		if f.Changed(name) {
			return fmt.Errorf("--%s: Intel RDT is not supported", name)
		}
	}
	mem := func() *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	cpu := func() *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	for _, m := range []struct {
		flag string
		dst  func() **int64
	}{
		{"memory", func() **int64 { return &mem().Limit }},
		{"memory-reservation", func() **int64 { return &mem().Reservation }},
		{"memory-swap", func() **int64 { return &mem().Swap }},
		{"kernel-memory", func() **int64 { return &mem().Kernel }}, //nolint:staticcheck // runc's obsolete flag, accepted and ignored
		{"kernel-memory-tcp", func() **int64 { return &mem().KernelTCP }},
	} {
		if !f.Changed(m.flag) {
			continue
		}
		s, _ := f.GetString(m.flag)
		v, err := parseBytes(s)
		if err != nil {
			return fmt.Errorf("--%s: %w", m.flag, err)
		}
		*m.dst() = &v
	}
	for _, name := range []string{"cpu-share", "cpu-shares"} {
		if f.Changed(name) {
			v, _ := f.GetUint64(name)
			cpu().Shares = &v
		}
	}
	u64s := map[string]func() **uint64{
		"cpu-period":    func() **uint64 { return &cpu().Period },
		"cpu-burst":     func() **uint64 { return &cpu().Burst },
		"cpu-rt-period": func() **uint64 { return &cpu().RealtimePeriod },
	}
	for name, dst := range u64s {
		if f.Changed(name) {
			v, _ := f.GetUint64(name)
			*dst() = &v
		}
	}
	i64s := map[string]func() **int64{
		"cpu-quota":      func() **int64 { return &cpu().Quota },
		"cpu-rt-runtime": func() **int64 { return &cpu().RealtimeRuntime },
		"cpu-idle":       func() **int64 { return &cpu().Idle },
	}
	for name, dst := range i64s {
		if f.Changed(name) {
			v, _ := f.GetInt64(name)
			*dst() = &v
		}
	}
	if f.Changed("cpuset-cpus") {
		cpu().Cpus, _ = f.GetString("cpuset-cpus")
	}
	if f.Changed("cpuset-mems") {
		cpu().Mems, _ = f.GetString("cpuset-mems")
	}
	if f.Changed("pids-limit") {
		v, _ := f.GetInt64("pids-limit")
		r.Pids = &specs.LinuxPids{Limit: &v}
	}
	if f.Changed("blkio-weight") {
		v, _ := f.GetUint16("blkio-weight")
		if r.BlockIO == nil {
			r.BlockIO = &specs.LinuxBlockIO{}
		}
		r.BlockIO.Weight = &v
	}
	return nil
}

// parseBytes reads a size as runc's update does: a number of bytes with an
// optional binary suffix (k, m, g, t, p; "kb", "KiB" also work), or -1.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return -1, nil
	}
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(s[i:])
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || v < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q", s, s[i:])
	}
	v *= mult
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(v), nil
}
