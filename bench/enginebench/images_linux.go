package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// webRef is the web:1 image in the local registry.
func (v *env) webRef() string { return v.regAddr + "/berth-bench/web:1" }

// pushWeb copies web:1 from the shared OCI layout into the local registry
// with skopeo (once).
func (v *env) pushWeb() error {
	if v.webPushed {
		return nil
	}
	if err := v.startRegistry(); err != nil {
		return err
	}
	src := "oci:" + filepath.Join(v.shared, "oci") + ":web:1"
	out, err := exec.Command("skopeo", "copy", "--quiet", "--dest-tls-verify=false", src, "docker://"+v.webRef()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("skopeo copy %s: %w: %s", src, err, strings.TrimSpace(string(out)))
	}
	v.webPushed = true
	return nil
}

// freshBerth is berth on a new, empty root (its own bridge and nft table
// names, so a system reset of it never touches the main bench root's).
func (v *env) freshBerth(name string) (*engine, string) {
	dir := filepath.Join(v.dir, name)
	e := v.berthAt(dir)
	e.env = []string{"BERTH_BRIDGE=berthbenchx0", "BERTH_NFT_TABLE=berth_bench_x"}
	return e, dir
}

// imageOp is one engine's timed step and the cleanup that empties its
// caches afterwards (untimed).
type imageOp struct {
	name  string
	op    func(i int) (time.Duration, error)
	after func(i int) error
}

func timeOps(ops []imageOp, n int) ([][]float64, error) {
	times := make([][]float64, len(ops))
	for i := 0; i < n; i++ {
		for k := range ops {
			j := (i + k) % len(ops)
			d, err := ops[j].op(i)
			if err != nil {
				return nil, err
			}
			if err := ops[j].after(i); err != nil {
				return nil, err
			}
			times[j] = append(times[j], d.Seconds())
		}
	}
	return times, nil
}

func printImageTable(w io.Writer, what string, ops []imageOp, times [][]float64, n int) {
	fmt.Fprintf(w, "\n[%s] %d interleaved runs each, caches emptied between runs, wall s\n", what, n)
	fmt.Fprintf(w, "  %-8s %8s %8s %8s\n", "engine", "median", "min", "max")
	for j, o := range ops {
		fmt.Fprintf(w, "  %-8s %8.2f %8.2f %8.2f\n", o.name, median(times[j]), quantile(times[j], 0), quantile(times[j], 1))
	}
	for j := 1; j < len(ops); j++ {
		r := ratio(median(times[0]), median(times[j]))
		fmt.Fprintf(w, "  ratio of medians berth/%s: %.3f (%s is %.1fx berth)\n", ops[j].name, r, ops[j].name, 1/r)
	}
	r := ratio(median(times[0]), median(times[1]))
	fmt.Fprintf(w, "  target berth <= 1/3 of docker (%.2f s): %s\n", median(times[1])/3, verdict(r <= 1.0/3))
}

// benchPull pulls web:1 from the local registry: berth into a fresh root
// each time, docker and podman after removing the image.
func benchPull(w io.Writer, v *env, c config) error {
	if _, err := v.engines(); err != nil {
		return err
	}
	if err := v.pushWeb(); err != nil {
		return err
	}
	ref := v.webRef()
	berthOp := func(i int) (time.Duration, error) {
		e, _ := v.freshBerth(fmt.Sprintf("pull-%d", i))
		return e.timed("pull", "-q", ref)
	}
	berthAfter := func(i int) error {
		e, dir := v.freshBerth(fmt.Sprintf("pull-%d", i))
		if _, err := e.run("image", "inspect", ref); err != nil {
			return fmt.Errorf("berth pull left no image: %w", err)
		}
		v.resetBerth(e, dir)
		return nil
	}
	ops := []imageOp{
		{"berth", berthOp, berthAfter},
		{"docker", func(int) (time.Duration, error) { return v.docker.timed("pull", "-q", ref) },
			func(int) error {
				if _, err := v.docker.run("rmi", ref); err != nil {
					return err
				}
				_, err := v.docker.run("image", "prune", "-af")
				return err
			}},
		{"podman", func(int) (time.Duration, error) { return v.podman.timed("pull", "-q", "--tls-verify=false", ref) },
			func(int) error { _, err := v.podman.run("rmi", "-f", ref); return err }},
	}
	times, err := timeOps(ops, c.pullN)
	if err != nil {
		return err
	}
	printImageTable(w, "pull "+ref+" (4 layers, 227 MB unpacked)", ops, times, c.pullN)
	return nil
}

// benchLoad loads a docker-archive of web:1 written by berth save: berth
// into a fresh root each time, docker and podman after removing the image.
func benchLoad(w io.Writer, v *env, c config) error {
	if _, err := v.engines(); err != nil {
		return err
	}
	archive := filepath.Join(v.dir, "web.docker.tar")
	if _, err := os.Stat(archive); err != nil {
		e, dir := v.freshBerth("save")
		if _, err := e.run("pull", "-q", "oci:"+filepath.Join(v.shared, "oci")+":web:1"); err != nil {
			return err
		}
		if _, err := e.run("save", "-o", archive, "web:1"); err != nil {
			return err
		}
		v.resetBerth(e, dir)
	}
	st, err := os.Stat(archive)
	if err != nil {
		return err
	}
	ops := []imageOp{
		{"berth", func(i int) (time.Duration, error) {
			e, _ := v.freshBerth(fmt.Sprintf("load-%d", i))
			return e.timed("load", "-q", "-i", archive)
		}, func(i int) error {
			e, dir := v.freshBerth(fmt.Sprintf("load-%d", i))
			if _, err := e.run("image", "inspect", "web:1"); err != nil {
				return fmt.Errorf("berth load left no image: %w", err)
			}
			v.resetBerth(e, dir)
			return nil
		}},
		{"docker", func(int) (time.Duration, error) { return v.docker.timed("load", "-q", "-i", archive) },
			func(int) error {
				if _, err := v.docker.run("rmi", "web:1"); err != nil {
					return err
				}
				_, err := v.docker.run("image", "prune", "-af")
				return err
			}},
		{"podman", func(int) (time.Duration, error) { return v.podman.timed("load", "-q", "-i", archive) },
			func(int) error { _, err := v.podman.run("rmi", "-f", "web:1"); return err }},
	}
	times, err := timeOps(ops, c.pullN)
	if err != nil {
		return err
	}
	printImageTable(w, fmt.Sprintf("load -i web.docker.tar (berth save of web:1, docker-archive, %.0f MB)", float64(st.Size())/1e6), ops, times, c.pullN)
	return nil
}
