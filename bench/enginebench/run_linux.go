package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	berth     string
	shared    string
	out       string
	sections  map[string]bool
	n         int // interleaved runs per engine for run --rm
	warm      int
	churn     int // containers in the churn test
	par       int // parallelism of the concurrent churn
	idle      int // idle containers per engine for the memory test
	pullN     int
	iperfN    int
	iperfTime int
}

var allSections = []string{"run", "churn", "mem", "pull", "load", "net"}

func run(args []string) error {
	var c config
	fs := flag.NewFlagSet("enginebench", flag.ContinueOnError)
	fs.StringVar(&c.berth, "berth", "bin/berth", "berth binary")
	fs.StringVar(&c.shared, "images", "../shared/images", "directory of the shared test images")
	fs.StringVar(&c.out, "out", "bench/out", "directory for engine-report.txt")
	only := fs.String("only", strings.Join(allSections, ","), "sections to run: "+strings.Join(allSections, ","))
	fs.IntVar(&c.n, "n", 30, "measured runs of run --rm per engine and network mode")
	fs.IntVar(&c.warm, "warm", 3, "warm-up runs per engine, discarded")
	fs.IntVar(&c.churn, "churn", 100, "detached containers started then removed")
	fs.IntVar(&c.par, "par", 10, "parallelism of the concurrent churn")
	fs.IntVar(&c.idle, "idle", 5, "idle containers per engine for the memory test")
	fs.IntVar(&c.pullN, "pull-n", 5, "measured pulls and loads per engine")
	fs.IntVar(&c.iperfN, "iperf-n", 3, "iperf3 runs per path")
	fs.IntVar(&c.iperfTime, "iperf-time", 5, "seconds per iperf3 run (the first second is omitted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.sections = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(allSections, s) {
			return fmt.Errorf("-only: unknown section %q (want some of %s)", s, strings.Join(allSections, ","))
		}
		c.sections[s] = true
	}
	var err error
	if c.berth, err = filepath.Abs(c.berth); err != nil {
		return err
	}
	if c.shared, err = filepath.Abs(c.shared); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (dockerd, network namespaces, berth's bridge)")
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	rep, err := os.Create(filepath.Join(c.out, "engine-report.txt"))
	if err != nil {
		return err
	}
	defer rep.Close()
	w := io.MultiWriter(os.Stdout, rep)

	v, err := newEnv(c.berth, c.shared)
	if err != nil {
		return err
	}
	// Clean up on ^C too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		v.logf("interrupted: cleaning up")
		v.close()
		os.Exit(130)
	}()
	defer v.close()

	header(w, c)
	if c.sections["pull"] {
		// Before dockerd, which must know it as an insecure registry.
		if err := v.startRegistry(); err != nil {
			return err
		}
	}
	type section struct {
		name string
		fn   func(io.Writer, *env, config) error
	}
	var failed []string
	for _, s := range []section{
		{"run", benchRun}, {"churn", benchChurn}, {"mem", benchMem},
		{"pull", benchPull}, {"load", benchLoad}, {"net", benchNet},
	} {
		if !c.sections[s.name] {
			continue
		}
		t0 := time.Now()
		v.logf("section %s", s.name)
		if err := s.fn(w, v, c); err != nil {
			fmt.Fprintf(w, "\n[%s] FAILED: %v\n", s.name, err)
			failed = append(failed, s.name)
		}
		v.logf("section %s took %s", s.name, time.Since(t0).Round(time.Second))
	}
	if len(failed) > 0 {
		return fmt.Errorf("sections failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func header(w io.Writer, c config) {
	fmt.Fprintf(w, "enginebench %s, %s/%s, %d CPUs", time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		fmt.Fprintf(w, ", load average %s %s %s", f[0], f[1], f[2])
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		fmt.Fprintf(w, ", kernel %s", cstr(u.Release[:]))
	}
	fmt.Fprintln(w)
	for _, v := range [][]string{{c.berth, "version"}, {"docker", "--version"}, {"podman", "--version"}} {
		out, _ := execOut(v[0], v[1])
		first := strings.SplitN(strings.TrimSpace(out), "\n", 3)
		fmt.Fprintf(w, "  %s\n", strings.Join(first, " / "))
	}
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
