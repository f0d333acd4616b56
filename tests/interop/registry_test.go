// Registry interop: Docker and Podman pull an image that berth pushed to a
// real registry (Debian's docker-registry). Run as root (CI is root):
//
//	go test ./tests/interop/ -run TestRegistry -v
//
// Missing Debian packages (docker-registry docker.io containerd podman
// conmon runc) are installed with apt-get, with services kept from
// starting. Every daemon is private: containerd, dockerd and podman keep
// their state in one /tmp/berth-interop-registry-* directory, and the
// cleanup puts back what dockerd and podman change on the host by default.
package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image/content"
	"github.com/berth-project/berth/image/content/local"
	"github.com/berth-project/berth/image/registry"
	"github.com/berth-project/berth/internal/testutil"
)

// hostPaths are paths dockerd and podman use by default; the test must not
// leave anything new there.
var hostPaths = []string{
	"/var/lib/docker", "/run/docker", "/var/lib/containerd", "/run/containerd",
	"/var/lib/containers", "/run/containers", "/run/libpod", "/etc/docker",
}

func TestRegistryDockerPodmanPullBerthPush(t *testing.T) {
	work, before := hostWork(t, "berth-interop-registry-", map[string]string{
		"docker-registry": "docker-registry", "dockerd": "docker.io", "containerd": "containerd",
		"podman": "podman", "conmon": "conmon", "runc": "runc",
	}, "/var/lib/containers/cache", "/var/lib/containers", "/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd")
	t.Cleanup(func() {
		// Registered after hostWork's, so it runs before its removeNewEmpty
		// (and after every daemon was stopped).
		if cache := "/var/lib/containers/cache/blob-info-cache-v1.boltdb"; !before[cache] {
			os.Remove(cache) // podman 4.3 writes it as root whatever its settings
		}
	})

	host := testutil.StartRegistry(t, nil)
	ctx := context.Background()
	cs, err := local.New(filepath.Join(work, "content"))
	if err != nil {
		t.Fatal(err)
	}
	pushed := map[string]ocispec.Descriptor{}
	for _, img := range []string{"busybox:1.35", "layers:1"} {
		desc := loadLayoutImage(t, cs, img)
		ref, err := name.ParseReference(host + "/berth/" + img)
		if err != nil {
			t.Fatal(err)
		}
		if err := registry.Push(ctx, ref, cs, desc, registry.PushOptions{}); err != nil {
			t.Fatalf("berth push %s: %v", ref, err)
		}
		pushed[ref.String()] = desc
	}

	t.Run("docker", func(t *testing.T) {
		docker := startDocker(t, filepath.Join(work, "docker"))
		for ref, desc := range pushed {
			run(t, 120, docker("pull", ref))
			digests := run(t, 30, docker("image", "inspect", "-f", "{{join .RepoDigests \" \"}}", ref))
			want := strings.SplitN(ref, ":", 3)
			repo := strings.Join(want[:2], ":") // host:port/berth/name
			if !strings.Contains(digests, repo+"@"+desc.Digest.String()) {
				t.Errorf("docker RepoDigests of %s = %q, want %s@%s", ref, digests, repo, desc.Digest)
			}
		}
		// The content is right: a file read out of a created container.
		ref := host + "/berth/layers:1"
		id := strings.TrimSpace(run(t, 60, docker("create", "--network", "none", ref)))
		out := run(t, 60, docker("cp", id+":/data/keep/a", "-"))
		if !strings.Contains(out, "changed") {
			t.Errorf("docker cp /data/keep/a from the pulled image: %q", out)
		}
		run(t, 60, docker("rm", id))
	})

	t.Run("podman", func(t *testing.T) {
		podman := podmanCmd(t, filepath.Join(work, "podman"))
		for ref, desc := range pushed {
			run(t, 120, podman("pull", "--tls-verify=false", ref))
			got := strings.TrimSpace(run(t, 30, podman("image", "inspect", "--format", "{{.Digest}}", ref)))
			if got != desc.Digest.String() {
				t.Errorf("podman digest of %s = %s, want %s", ref, got, desc.Digest)
			}
		}
		ref := host + "/berth/layers:1"
		id := strings.TrimSpace(run(t, 60, podman("create", "--network", "none", ref)))
		out := run(t, 60, podman("cp", id+":/data/keep/a", "-"))
		if !strings.Contains(out, "changed") {
			t.Errorf("podman cp /data/keep/a from the pulled image: %q", out)
		}
		run(t, 60, podman("rm", id))
		run(t, 60, podman("rmi", "-a", "-f"))
	})
}

// run runs cmd with a time limit and returns its stdout; failure fails the
// test with stderr.
func run(t *testing.T, secs int, cmd *exec.Cmd) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env = cmd.Env
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	return stdout.String()
}

// hostWork prepares a test that runs daemons on the host: it needs root,
// installs the missing packages of pkgs (binary -> Debian package) and
// makes a work directory named prefix*. When the test ends, after the
// daemons were stopped, it puts root's key quota back, removes those of
// emptyDirs that are new and empty, removes the work directory and checks
// that the host paths are as they were. It returns the work directory and
// the host paths before the test.
func hostWork(t *testing.T, prefix string, pkgs map[string]string, emptyDirs ...string) (string, map[string]bool) {
	t.Helper()
	testutil.RequireRoot(t, "it runs dockerd and containerd")
	installPackages(t, pkgs)
	before := snapshotHost()
	keys := readKeyQuota()
	work, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Registered first, so it runs after the daemons were stopped.
		restoreKeyQuota(keys)
		removeNewEmpty(before, emptyDirs...)
		if err := os.RemoveAll(work); err != nil {
			t.Errorf("remove %s: %v", work, err)
		}
		if diff := diffHost(before, snapshotHost()); diff != "" {
			t.Errorf("host paths changed by the test:\n%s", diff)
		}
	})
	return work, before
}

func installPackages(t *testing.T, bins map[string]string) {
	t.Helper()
	var need []string
	for bin, pkg := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			need = append(need, pkg)
		}
	}
	if len(need) == 0 {
		return
	}
	if os.Getenv("BERTH_INTEROP_NO_INSTALL") == "1" {
		t.Fatalf("missing packages: %v (BERTH_INTEROP_NO_INSTALL=1)", need)
	}
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# berth interop: keep services from starting during install\nexit 101\n"), 0o755); err == nil {
			defer os.Remove(policy)
		}
	}
	out, err := exec.Command("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "+strings.Join(need, " ")).CombinedOutput()
	if err != nil {
		t.Fatalf("apt-get install %v: %v\n%s", need, err, out)
	}
}

// startDaemon starts a process whose output goes to log, stopped by PID
// (SIGTERM, then SIGKILL after 20 s) when the test ends.
func startDaemon(t *testing.T, log string, env []string, argv ...string) *exec.Cmd {
	t.Helper()
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	return cmd
}

// waitFor polls ok until it holds, failing with the daemon's log.
func waitFor(t *testing.T, what, log string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return
		}
	}
	b, _ := os.ReadFile(log)
	t.Fatalf("%s not ready after 60s; log:\n%s", what, b)
}

// startDocker starts a private containerd and dockerd (vfs storage, no
// networking changes) and returns a docker CLI command maker.
func startDocker(t *testing.T, d string) func(args ...string) *exec.Cmd {
	t.Helper()
	for _, sub := range []string{"containerd", "cli", "tmp"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cd := filepath.Join(d, "containerd")
	sock := filepath.Join(cd, "containerd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(cd, "root"), filepath.Join(cd, "state"), sock, sock+".ttrpc", filepath.Join(cd, "debug.sock"), filepath.Join(cd, "opt"))
	if err := os.WriteFile(filepath.Join(cd, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tmpEnv := []string{"TMPDIR=" + filepath.Join(d, "tmp")}
	clog := filepath.Join(cd, "containerd.log")
	startDaemon(t, clog, tmpEnv, "containerd", "--config", filepath.Join(cd, "config.toml"))
	waitFor(t, "containerd", clog, func() bool {
		return exec.Command("ctr", "--address", sock, "version").Run() == nil
	})
	daemonJSON := filepath.Join(d, "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte(fmt.Sprintf(`{"deprecated-key-path": %q}`, filepath.Join(d, "key.json"))), 0o600); err != nil {
		t.Fatal(err)
	}
	dsock := "unix://" + filepath.Join(d, "docker.sock")
	dlog := filepath.Join(d, "dockerd.log")
	startDaemon(t, dlog, tmpEnv, "dockerd",
		"--data-root", filepath.Join(d, "data"), "--exec-root", filepath.Join(d, "exec"),
		"--pidfile", filepath.Join(d, "dockerd.pid"), "-H", dsock, "--containerd", sock,
		"--config-file", daemonJSON, "--storage-driver", "vfs",
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
		"--exec-opt", "native.cgroupdriver=cgroupfs")
	docker := func(args ...string) *exec.Cmd {
		c := exec.Command("docker", args...)
		c.Env = append(os.Environ(), "DOCKER_HOST="+dsock, "DOCKER_CONFIG="+filepath.Join(d, "cli"))
		return c
	}
	waitFor(t, "dockerd", dlog, func() bool { return docker("version").Run() == nil })
	t.Cleanup(func() {
		// Containers and images go before the daemon stops (cleanups run
		// in reverse order: this one before dockerd's).
		if ids, err := docker("ps", "-aq").Output(); err == nil && len(bytes.TrimSpace(ids)) > 0 {
			docker(append([]string{"rm", "-f"}, strings.Fields(string(ids))...)...).Run()
		}
	})
	return docker
}

// podmanCmd returns a podman command maker with all state under p (vfs
// storage, file locks, no system configuration).
func podmanCmd(t *testing.T, p string) func(args ...string) *exec.Cmd {
	t.Helper()
	for _, sub := range []string{"tmp", "net", "libpod"} {
		if err := os.MkdirAll(filepath.Join(p, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`[containers]
cgroupns = "host"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = %q
static_dir = %q
volume_path = %q
image_copy_tmp_dir = %q
[network]
network_config_dir = %q
`, filepath.Join(p, "libpod"), filepath.Join(p, "root", "libpod"), filepath.Join(p, "volumes"), filepath.Join(p, "tmp"), filepath.Join(p, "net"))
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(p, "run"), filepath.Join(p, "root"))
	for f, s := range map[string]string{"containers.conf": conf, "storage.conf": storage, "registries.conf": ""} {
		if err := os.WriteFile(filepath.Join(p, f), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	podman := func(args ...string) *exec.Cmd {
		full := append([]string{"--root", filepath.Join(p, "root"), "--runroot", filepath.Join(p, "run"),
			"--tmpdir", filepath.Join(p, "libpod"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
			"--events-backend", "file", "--network-config-dir", filepath.Join(p, "net"),
			"--volumepath", filepath.Join(p, "volumes")}, args...)
		c := exec.Command("podman", full...)
		c.Env = append(os.Environ(),
			"CONTAINERS_CONF="+filepath.Join(p, "containers.conf"),
			"CONTAINERS_STORAGE_CONF="+filepath.Join(p, "storage.conf"),
			"CONTAINERS_REGISTRIES_CONF="+filepath.Join(p, "registries.conf"),
			"TMPDIR="+filepath.Join(p, "tmp"))
		return c
	}
	t.Cleanup(func() {
		podman("rm", "-a", "-f").Run()
		podman("rmi", "-a", "-f").Run()
	})
	return podman
}

// loadLayoutImage copies one image of the shared OCI layout into cs.
func loadLayoutImage(t *testing.T, cs content.Store, refName string) ocispec.Descriptor {
	t.Helper()
	layout := filepath.Join(testutil.SharedImages(t), "oci")
	raw, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatalf("test images: %v", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(d ocispec.Descriptor) []byte {
		b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		if err := content.WriteBlob(ctx, cs, d, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] != refName {
			continue
		}
		desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size}
		var man ocispec.Manifest
		if err := json.Unmarshal(put(desc), &man); err != nil {
			t.Fatal(err)
		}
		for _, b := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			put(b)
		}
		return desc
	}
	t.Fatalf("%s not in %s", refName, layout)
	return ocispec.Descriptor{}
}

func snapshotHost() map[string]bool {
	m := map[string]bool{}
	for _, p := range hostPaths {
		filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if strings.Count(strings.TrimPrefix(path, p), "/") > 2 {
				return filepath.SkipDir
			}
			if d.Type()&os.ModeSocket == 0 {
				m[path] = true
			}
			return nil
		})
	}
	return m
}

func diffHost(before, after map[string]bool) string {
	var b strings.Builder
	for p := range after {
		if !before[p] {
			fmt.Fprintf(&b, "+ %s\n", p)
		}
	}
	for p := range before {
		if !after[p] {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}

// removeNewEmpty removes, in order, those of dirs that did not exist
// before and are now empty (rmdir only).
func removeNewEmpty(before map[string]bool, dirs ...string) {
	for _, d := range dirs {
		if !before[d] {
			if d == "/run/containerd/s" {
				// sockets of shims that had to be killed
				entries, _ := os.ReadDir(d)
				for _, e := range entries {
					if e.Type()&os.ModeSocket != 0 {
						os.Remove(filepath.Join(d, e.Name()))
					}
				}
			}
			os.Remove(d)
		}
	}
}

// dockerd raises root's key quota at start; the test puts it back.
func readKeyQuota() [2][]byte {
	k, _ := os.ReadFile("/proc/sys/kernel/keys/root_maxkeys")
	b, _ := os.ReadFile("/proc/sys/kernel/keys/root_maxbytes")
	return [2][]byte{k, b}
}

func restoreKeyQuota(q [2][]byte) {
	if len(q[0]) > 0 {
		os.WriteFile("/proc/sys/kernel/keys/root_maxkeys", q[0], 0o644)
	}
	if len(q[1]) > 0 {
		os.WriteFile("/proc/sys/kernel/keys/root_maxbytes", q[1], 0o644)
	}
}
