// CLI interop: the `berth` binary and the real Docker exchange images as
// users do it: `docker load` of what `berth save` writes (docker-archive
// and oci-archive), `berth load` of what `docker save` writes, and
// `berth pull -q` printing what `docker pull -q` prints. Run as root (CI
// is root):
//
//	BERTH=$PWD/bin/berth go test ./tests/interop/ -run TestCLI -v
//
// Without $BERTH the test builds berth. It reuses registry_test.go's
// helpers: missing Debian packages are installed, containerd and dockerd
// are private to one /tmp/berth-interop-cli-* directory (the registry, of
// internal/testutil, to its own temporary directory), and what dockerd
// changes on the host by default is put back.
package interop_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

func TestCLIDockerSaveLoadPull(t *testing.T) {
	work, _ := hostWork(t, "berth-interop-cli-", map[string]string{"docker-registry": "docker-registry", "dockerd": "docker.io", "containerd": "containerd", "runc": "runc"},
		"/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd")
	bin, err := testutil.Binary("BERTH", work, "berth")
	if err != nil {
		t.Fatal(err)
	}
	images := testutil.SharedImages(t)
	// berth makes a command of the berth store named store.
	berth := func(store string, args ...string) *exec.Cmd {
		d := filepath.Join(work, "berth-"+store)
		return exec.Command(bin, append([]string{"--root", filepath.Join(d, "root"), "--run-dir", filepath.Join(d, "run")}, args...)...)
	}
	t.Cleanup(func() {
		for _, s := range []string{"a", "b"} {
			if ids, err := berth(s, "ps", "-aq").Output(); err == nil && len(bytes.TrimSpace(ids)) > 0 {
				berth(s, append([]string{"rm", "-f"}, strings.Fields(string(ids))...)...).Run()
			}
		}
	})
	id := func(cmd *exec.Cmd) string {
		t.Helper()
		return strings.TrimSpace(run(t, 30, cmd))
	}
	docker := startDocker(t, filepath.Join(work, "docker"))

	for _, img := range []string{"busybox:1.35", "layers:1"} {
		run(t, 60, berth("a", "pull", "-q", "oci:"+filepath.Join(images, "oci")+":"+img))
	}
	bbID := id(berth("a", "image", "inspect", "-f", "{{.Id}}", "busybox:1.35"))
	lyID := id(berth("a", "image", "inspect", "-f", "{{.Id}}", "layers:1"))

	t.Run("docker load of berth save", func(t *testing.T) {
		for _, format := range []string{"docker-archive", "oci-archive"} {
			bb, ly := "berth-interop/busybox:"+format, "berth-interop/layers:"+format
			run(t, 30, berth("a", "tag", "busybox:1.35", bb))
			run(t, 30, berth("a", "tag", "layers:1", ly))
			file := filepath.Join(work, format+".tar")
			if format == "docker-archive" {
				run(t, 60, berth("a", "save", "-o", file, bb, ly))
			} else {
				// To stdout, as `berth save > file`.
				f, err := os.Create(file)
				if err != nil {
					t.Fatal(err)
				}
				c := berth("a", "save", "--format", format, bb, ly)
				var stderr bytes.Buffer
				c.Stdout, c.Stderr = f, &stderr
				err = c.Run()
				f.Close()
				if err != nil {
					t.Fatalf("berth save --format %s: %v\n%s", format, err, stderr.String())
				}
			}
			out := run(t, 120, docker("load", "-i", file))
			for name, want := range map[string]string{bb: bbID, ly: lyID} {
				if !strings.Contains(out, "Loaded image: "+name) {
					t.Errorf("docker load of berth's %s: %q does not name %s", format, out, name)
				}
				if got := id(docker("image", "inspect", "-f", "{{.Id}}", name)); got != want {
					t.Errorf("docker's %s from berth's %s: ID %s, want %s", name, format, got, want)
				}
			}
			// The layers are there in order: a file only the last ones make.
			cid := strings.TrimSpace(run(t, 60, docker("create", "--network", "none", ly)))
			if got := run(t, 60, docker("cp", cid+":/data/keep/a", "-")); !strings.Contains(got, "changed") {
				t.Errorf("docker cp /data/keep/a out of %s: %q", ly, got)
			}
			run(t, 60, docker("rm", cid))
		}
	})

	t.Run("berth load of docker save", func(t *testing.T) {
		run(t, 120, docker("load", "-i", filepath.Join(images, "layers.docker.tar.gz")))
		run(t, 30, docker("tag", "layers:1", "berth-interop/from-docker:1"))
		want := id(docker("image", "inspect", "-f", "{{.Id}}", "layers:1"))
		file := filepath.Join(work, "docker-save.tar")
		run(t, 120, docker("save", "-o", file, "berth-interop/from-docker:1"))
		out := run(t, 120, berth("b", "load", "-i", file))
		if !strings.Contains(out, "Loaded image: berth-interop/from-docker:1") {
			t.Errorf("berth load of docker save: %q", out)
		}
		if got := id(berth("b", "image", "inspect", "-f", "{{.Id}}", "berth-interop/from-docker:1")); got != want {
			t.Errorf("berth's image from docker save: ID %s, want %s", got, want)
		}
		// Piped: docker save | berth load.
		save := docker("save", "layers:1")
		load := berth("b", "load")
		pipe, err := save.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		load.Stdin = pipe
		var lout, lerr bytes.Buffer
		load.Stdout, load.Stderr = &lout, &lerr
		if err := save.Start(); err != nil {
			t.Fatal(err)
		}
		if err := load.Run(); err != nil {
			t.Fatalf("docker save | berth load: %v\n%s", err, lerr.String())
		}
		save.Wait()
		if got := id(berth("b", "image", "inspect", "-f", "{{.Id}}", "layers:1")); got != want {
			t.Errorf("docker save | berth load: ID %s, want %s (%s)", got, want, lout.String())
		}
		name := "berth-interop-cli-run"
		out = run(t, 60, berth("b", "run", "--network", "none", "--name", name, "berth-interop/from-docker:1"))
		run(t, 30, berth("b", "rm", name))
		if out != "hello from layers image: changed\n" {
			t.Errorf("berth run of the image docker saved: %q", out)
		}
	})

	t.Run("pull -q prints what docker pull -q prints", func(t *testing.T) {
		host := testutil.StartRegistry(t, nil)
		ref := host + "/berth/busybox:q"
		run(t, 30, berth("a", "tag", "busybox:1.35", ref))
		run(t, 60, berth("a", "push", "-q", ref))
		want := run(t, 60, docker("pull", "-q", ref))
		run(t, 30, berth("a", "rmi", ref))
		if got := run(t, 60, berth("a", "pull", "-q", ref)); got != want {
			t.Errorf("berth pull -q printed %q, docker pull -q %q", got, want)
		}
		// The same when the image is already there.
		want = run(t, 60, docker("pull", "-q", ref))
		if got := run(t, 60, berth("a", "pull", "-q", ref)); got != want {
			t.Errorf("berth pull -q of a present image printed %q, docker pull -q %q", got, want)
		}
	})
}
