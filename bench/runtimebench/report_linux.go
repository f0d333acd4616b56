package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// report prints the results to stdout and, with -out, writes report.txt,
// runs.csv and latency.svg.
func report(s *session) error {
	cfg, a, b := s.cfg, s.a, s.b
	var buf strings.Builder
	writeReport(&buf, s)
	buf.WriteString(s.extra.String())
	fmt.Print(buf.String())
	if cfg.outDir == "" {
		return nil
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return fmt.Errorf("make output dir: %w", err)
	}
	sb := summarize(b.wall)
	svg := plotECDF(
		fmt.Sprintf("Container start latency: %s vs %s (%d interleaved runs each)", a.label, b.label, cfg.n),
		[]series{{a.label, a.color, a.wall}, {b.label, b.color, b.wall}},
		time.Duration(float64(sb.Median)*targetRatio),
		fmt.Sprintf("target (%.1f x %s median):", targetRatio, b.label),
	)
	files := map[string]string{
		"report.txt":  buf.String(),
		"runs.csv":    runsCSV(a, b),
		"latency.svg": svg,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(cfg.outDir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	fmt.Printf("\nwrote %s/{report.txt,runs.csv,latency.svg}\n", cfg.outDir)
	return nil
}

func writeReport(w io.Writer, s *session) {
	cfg, a, b := s.cfg, s.a, s.b
	sa, sb := summarize(a.wall), summarize(b.wall)
	ratio := float64(sa.Median) / float64(sb.Median)

	fmt.Fprintf(w, "%s vs %s: OCI runtime start latency and peak memory\n", a.label, b.label)
	fmt.Fprintf(w, "machine:  %s\n", describeMachine())
	fmt.Fprintf(w, "load:     1-minute load average %s\n", s.load)
	fmt.Fprintf(w, "runtimes: %s = %s (%s)\n", a.label, a.path, runtimeVersion(a.path))
	fmt.Fprintf(w, "          %s = %s (%s)\n", b.label, b.path, runtimeVersion(b.path))
	fmt.Fprintf(w, "command:  <runtime> --root <own state dir> run --bundle <shared bundle> berth-bench-<unique id>, stdin /dev/null\n")
	fmt.Fprintf(w, "bundle:   busybox-static rootfs, config.json from `%s spec` with process.args [\"/bin/true\"], terminal false\n", filepath.Base(s.specTool))
	fmt.Fprintf(w, "runs:     %d measured per runtime, interleaved (%s, %s, ...), after %d discarded warm-up runs each\n\n", cfg.n, a.label, b.label, cfg.warmup)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "start latency (ms)\tmedian\tp10\tp90\tmin\tmax\tmean\t\n")
	for _, r := range []struct {
		name string
		s    summary
	}{{a.label, sa}, {b.label, sb}} {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.name,
			ms(r.s.Median), ms(r.s.P10), ms(r.s.P90), ms(r.s.Min), ms(r.s.Max), ms(r.s.Mean))
	}
	rt := func(x, y time.Duration) string { return fmt.Sprintf("%.2f", float64(x)/float64(y)) }
	fmt.Fprintf(tw, "ratio %s/%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", a.label, b.label,
		rt(sa.Median, sb.Median), rt(sa.P10, sb.P10), rt(sa.P90, sb.P90), rt(sa.Min, sb.Min), rt(sa.Max, sb.Max), rt(sa.Mean, sb.Mean))
	tw.Flush()

	fmt.Fprintf(w, "\ntarget:   %s median <= %.1f x %s median (%.2f ms): %s (ratio of medians %.2f)\n\n",
		a.label, targetRatio, b.label, ms(sb.Median)*targetRatio, verdict(ratio), ratio)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "work per run: median [p90]\t%s\t%s\t\n", a.label, b.label)
	cpu := func(c *contender) string {
		s := summarize(c.cpu)
		return fmt.Sprintf("%.1f [%.1f]", ms(s.Median), ms(s.P90))
	}
	flt := func(c *contender) string {
		s := summarize(faultsAsDurations(c.minflt))
		return fmt.Sprintf("%d [%d]", s.Median, s.P90)
	}
	fmt.Fprintf(tw, "CPU time, user+sys (ms)\t%s\t%s\t\n", cpu(a), cpu(b))
	fmt.Fprintf(tw, "minor page faults\t%s\t%s\t\n", flt(a), flt(b))
	tw.Flush()
	fmt.Fprintf(w, "  over the runtime and the descendants reaped inside its tree (wait4 rusage); CPU time below the wall\n")
	fmt.Fprintf(w, "  time means the run waits (on the kernel, on its children, on sleeps) rather than computes.\n\n")

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "peak RSS (MiB): median [max] of runs\t%s\t%s\t\n", a.label, b.label)
	mib := func(v []int64) string {
		if len(v) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f [%.1f]", float64(medianInt64(v))/1024, float64(maxInt64(v))/1024)
	}
	if cfg.memRuns > 0 {
		fmt.Fprintf(tw, "runtime process itself (a)\t%s\t%s\t\n", mib(a.self), mib(b.self))
		fmt.Fprintf(tw, "largest descendant (b)\t%s\t%s\t\n", mib(a.desc), mib(b.desc))
	}
	fmt.Fprintf(tw, "whole tree, wait4 ru_maxrss (c)\t%s\t%s\t\n", mib(a.tree), mib(b.tree))
	tw.Flush()
	if cfg.memRuns > 0 {
		fmt.Fprintf(w, "  (a) VmHWM of the runtime's own memory map, read under ptrace when it exits (%d extra runs each, untimed).\n", cfg.memRuns)
		fmt.Fprintf(w, "  (b) highest VmHWM of any process the runtime started, under ptrace: the runtime re-exec'd as container\n")
		fmt.Fprintf(w, "      init is read just before it execs /bin/true, others when they exit (up to %d and %d processes per run).\n", a.procs, b.procs)
	}
	fmt.Fprintf(w, "  (c) ru_maxrss that wait4 returned for the runtime in the timed runs: the kernel's max over the runtime and\n")
	fmt.Fprintf(w, "      every descendant reaped inside its tree, so it is max(a, b) when the runtime reaps all it starts.\n")
	fmt.Fprintf(w, "      getrusage(RUSAGE_CHILDREN) in the runtime alone would cover only children it waited for.\n")
	if a.orphan+b.orphan > 0 {
		fmt.Fprintf(w, "  orphans: descendants outlived the runtime and were reaped by the bench: %s %d, %s %d\n", a.label, a.orphan, b.label, b.orphan)
	}
}

func runsCSV(cs ...*contender) string {
	var b strings.Builder
	b.WriteString("runtime,run,wall_ms,cpu_ms,minflt,tree_maxrss_kib\n")
	for _, c := range cs {
		for i, d := range c.wall {
			fmt.Fprintf(&b, "%s,%d,%.3f,%.3f,%d,%d\n", c.label, i+1, ms(d), ms(c.cpu[i]), c.minflt[i], c.tree[i])
		}
	}
	return b.String()
}

// faultsAsDurations lets summarize order counts: one fault per nanosecond.
func faultsAsDurations(v []int64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x)
	}
	return out
}
