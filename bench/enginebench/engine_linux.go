package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const busybox = "busybox:1.35"

func execOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// engines starts Docker and Podman (once) and loads the busybox archive into
// all three engines (once); berth comes first.
func (v *env) engines() ([]*engine, error) {
	if err := v.startDocker(); err != nil {
		return nil, err
	}
	if err := v.startPodman(); err != nil {
		return nil, err
	}
	es := []*engine{v.berth, v.docker, v.podman}
	if !v.busyboxLoaded {
		// Podman 4.3 cannot load a gzip-compressed docker-archive: all three
		// load the same uncompressed copy.
		archive := filepath.Join(v.dir, "busybox.docker.tar")
		if err := gunzip(filepath.Join(v.shared, "busybox.docker.tar.gz"), archive); err != nil {
			return nil, err
		}
		for _, e := range es {
			if _, err := e.run("load", "-i", archive); err != nil {
				return nil, err
			}
			out, err := e.run("run", "--rm", busybox, "sh", "-c", "echo ok")
			if isUnknownExit(err) {
				v.unknownExits++
				v.logf("%v", err)
			} else if err != nil {
				return nil, err
			}
			if out != "ok" {
				return nil, fmt.Errorf("%s: sanity run printed %q, want ok", e.name, out)
			}
		}
		v.busyboxLoaded = true
	}
	return es, nil
}

func gunzip(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, zr); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", src, err)
	}
	return out.Close()
}

// isUnknownExit tells berth's "exit status unknown" failure of run --rm.
func isUnknownExit(err error) bool {
	return err != nil && strings.Contains(err.Error(), "exit status unknown")
}

func fmtMs(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// benchRun times `run --rm busybox true`, interleaved, with --network none
// and then with each engine's default network.
func benchRun(w io.Writer, v *env, c config) error {
	es, err := v.engines()
	if err != nil {
		return err
	}
	for _, mode := range []string{"none", "default"} {
		args := []string{"run", "--rm"}
		if mode == "none" {
			args = append(args, "--network", "none")
		}
		args = append(args, busybox, "true")
		times := make([][]float64, len(es))
		unknown := make([]int, len(es))
		for i := 0; i < c.warm+c.n; i++ {
			for k := range es {
				j := (i + k) % len(es) // rotate who goes first
				d, err := es[j].timed(args...)
				if isUnknownExit(err) {
					// The container ran; berth lost its exit status (see
					// BENCHMARKS.md). Counted and reported, time kept.
					unknown[j]++
					v.unknownExits++
				} else if err != nil {
					return err
				}
				if i >= c.warm {
					times[j] = append(times[j], ms(d))
				}
			}
		}
		fmt.Fprintf(w, "\n[run] %s run --rm %s true, network %s: %d interleaved runs each (%d warm-ups discarded), wall ms\n",
			"<engine>", busybox, mode, c.n, c.warm)
		fmt.Fprintf(w, "  %-8s %8s %8s %8s %8s %8s\n", "engine", "median", "p10", "p90", "min", "max")
		for j, e := range es {
			t := times[j]
			fmt.Fprintf(w, "  %-8s %8s %8s %8s %8s %8s\n", e.name, fmtMs(median(t)), fmtMs(quantile(t, .1)),
				fmtMs(quantile(t, .9)), fmtMs(quantile(t, 0)), fmtMs(quantile(t, 1)))
		}
		for j, e := range es {
			if unknown[j] > 0 {
				fmt.Fprintf(w, "  WARNING: %d of %d %s runs exited 125 \"exit status unknown\" (the container ran and exited 0)\n", unknown[j], c.warm+c.n, e.name)
			}
		}
		rd := ratio(median(times[0]), median(times[1]))
		rp := ratio(median(times[0]), median(times[2]))
		fmt.Fprintf(w, "  ratio of medians: berth/docker %.3f (docker is %.1fx berth), berth/podman %.3f (podman is %.1fx berth)\n", rd, 1/rd, rp, 1/rp)
		fmt.Fprintf(w, "  target berth <= 1/8 of docker (%.1f ms): %s\n", median(times[1])/8, verdict(rd <= 0.125))
	}
	return nil
}

// benchChurn starts c.churn detached containers and then removes them,
// first one at a time and then c.par at a time, engine by engine.
func benchChurn(w io.Writer, v *env, c config) error {
	es, err := v.engines()
	if err != nil {
		return err
	}
	type result struct{ start, rm [2]time.Duration }
	res := make([]result, len(es))
	for j, e := range es {
		for m, par := range []int{1, c.par} {
			names := make([]string, c.churn)
			for i := range names {
				names[i] = fmt.Sprintf("berth-bench-churn-%d-%d", m, i)
			}
			d, err := parallel(par, names, func(n string) error {
				_, err := e.run("run", "-d", "--name", n, busybox, "sleep", "3600")
				return err
			})
			if err != nil {
				return err
			}
			res[j].start[m] = d
			if out, err := e.run("ps", "-q"); err != nil {
				return err
			} else if got := len(strings.Fields(out)); got != c.churn {
				return fmt.Errorf("%s: %d containers running after starting %d", e.name, got, c.churn)
			}
			d, err = parallel(par, names, func(n string) error {
				_, err := e.run(rmForce(e, n)...)
				return err
			})
			if err != nil {
				return err
			}
			res[j].rm[m] = d
			if out, err := e.run("ps", "-aq"); err != nil {
				return err
			} else if strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s: containers left after rm: %s", e.name, out)
			}
		}
	}
	fmt.Fprintf(w, "\n[churn] %d detached containers (run -d %s sleep 3600, default network), then rm -f each; total wall s\n", c.churn, busybox)
	fmt.Fprintf(w, "  %-8s %12s %12s %12s %12s\n", "engine", "start seq", "rm seq", fmt.Sprintf("start %d-par", c.par), fmt.Sprintf("rm %d-par", c.par))
	for j, e := range es {
		fmt.Fprintf(w, "  %-8s %12.2f %12.2f %12.2f %12.2f\n", e.name, res[j].start[0].Seconds(), res[j].rm[0].Seconds(), res[j].start[1].Seconds(), res[j].rm[1].Seconds())
	}
	for k := 1; k < len(es); k++ {
		fmt.Fprintf(w, "  ratio berth/%-6s %12.3f %12.3f %12.3f %12.3f\n", es[k].name,
			ratio(res[0].start[0].Seconds(), res[k].start[0].Seconds()), ratio(res[0].rm[0].Seconds(), res[k].rm[0].Seconds()),
			ratio(res[0].start[1].Seconds(), res[k].start[1].Seconds()), ratio(res[0].rm[1].Seconds(), res[k].rm[1].Seconds()))
	}
	return nil
}

// parallel runs fn on every item with at most par at a time and returns the
// wall time of the whole batch and the first error.
func parallel(par int, items []string, fn func(string) error) (time.Duration, error) {
	ch := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	t0 := time.Now()
	for k := 0; k < par; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := fn(it); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	return time.Since(t0), first
}

// benchMem starts c.idle idle containers per engine and reads the memory of
// the process that supervises each (the parent of the container's init:
// berth's supervisor, Docker's containerd-shim-runc-v2, Podman's conmon).
func benchMem(w io.Writer, v *env, c config) error {
	es, err := v.engines()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n[mem] %d idle containers per engine (run -d %s sleep 3600); the parent of each container's init, KiB\n", c.idle, busybox)
	fmt.Fprintf(w, "  %-8s %-24s %10s %10s %10s %10s\n", "engine", "supervisor (comm)", "RSS med", "RSS max", "PSS med", "PSS max")
	var berthRSS float64
	for j, e := range es {
		var names []string
		var rss, pss []float64
		comm := ""
		for i := 0; i < c.idle; i++ {
			n := fmt.Sprintf("berth-bench-idle-%d", i)
			if _, err := e.run("run", "-d", "--name", n, busybox, "sleep", "3600"); err != nil {
				return err
			}
			names = append(names, n)
		}
		time.Sleep(2 * time.Second) // let start-up allocations settle
		for _, n := range names {
			out, err := e.run("inspect", "-f", "{{.State.Pid}}", n)
			if err != nil {
				return err
			}
			pid, err := strconv.Atoi(strings.TrimSpace(out))
			if err != nil || pid <= 0 {
				return fmt.Errorf("%s inspect %s: pid %q", e.name, n, out)
			}
			pp, err := ppidOf(pid)
			if err != nil {
				return err
			}
			comm = commOf(pp)
			if e.name == "berth" {
				if args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pp)); len(args) > 0 {
					comm = strings.SplitN(string(args), "\x00", 2)[0]
				}
			}
			r, p, err := memOf(pp)
			if err != nil {
				return err
			}
			rss = append(rss, float64(r))
			pss = append(pss, float64(p))
		}
		if j == 0 {
			berthRSS = median(rss)
		}
		fmt.Fprintf(w, "  %-8s %-24s %10.0f %10.0f %10.0f %10.0f\n", e.name, comm, median(rss), quantile(rss, 1), median(pss), quantile(pss, 1))
		if e.name == "docker" && v.dockerd != nil {
			// The daemons Docker also needs, for scale (not per container).
			dpid := v.dockerd.Process.Pid
			for _, pid := range append([]int{dpid}, childrenOf(dpid)...) {
				if r, p, err := memOf(pid); err == nil {
					fmt.Fprintf(w, "  %-8s %-24s %10d %10s %10d %10s  (daemon, shared by all containers)\n", "", commOf(pid), r, "", p, "")
				}
			}
		}
		if _, err := e.run(rmForce(e, names...)...); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "  target berth supervisor RSS < 2048 KiB: %s (median %.0f KiB)\n", verdict(berthRSS < 2048), berthRSS)
	return nil
}

// rmForce is the engine's "remove now" command line: docker and berth rm -f
// send SIGKILL; podman's first sends SIGTERM and waits 10 s (sleep as pid 1
// ignores SIGTERM) unless -t 0.
func rmForce(e *engine, names ...string) []string {
	args := []string{"rm", "-f"}
	if e.name == "podman" {
		args = append(args, "-t", "0")
	}
	return append(args, names...)
}

func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := ppidOf(p); err == nil && pp == pid {
			out = append(out, p)
		}
	}
	return out
}
