package e2e

// The image commands as a Docker user runs them: pull and push against a
// real registry (Debian's docker-registry on loopback, started by each
// test that needs one), login/logout, save/load, import, images, rmi,
// prune, history, inspect and system df, bad input, and a pull killed
// with SIGKILL midway.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testutil"
)

// store is a berth --root of its own, for tests that change the image set
// as a whole (prune -a) or need an empty store (load, pull back).
type store struct {
	dir, root, runDir string
	env               []string // added to the environment of every command
}

// newStore makes an empty store, removed (containers, mounts, files) at
// the end of the test. Containers in it must use --network none: the
// bridge belongs to the tests' main store.
func newStore(t *testing.T) *store {
	t.Helper()
	dir, err := os.MkdirTemp("", "berth-e2e-img-")
	if err != nil {
		t.Fatal(err)
	}
	s := &store{dir: dir, root: filepath.Join(dir, "root"), runDir: filepath.Join(dir, "run")}
	t.Cleanup(func() {
		if ids := strings.Fields(s.run(t, nil, "ps", "-aq").out); len(ids) > 0 {
			s.run(t, nil, append([]string{"rm", "-f"}, ids...)...)
		}
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return s
}

// mainStore is the tests' shared store (TestMain's images are in it).
func mainStore() *store { return &store{root: root, runDir: runDir} }

// unmountUnder detaches whatever is still mounted under dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mnts []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mnts = append(mnts, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mnts)))
	for _, m := range mnts {
		unix.Unmount(m, unix.MNT_DETACH)
	}
}

func (s *store) cmd(args ...string) *exec.Cmd {
	c := exec.Command(berthBin, append([]string{"--root", s.root, "--run-dir", s.runDir}, args...)...)
	c.Env = append(os.Environ(), s.env...)
	return c
}

func (s *store) run(t testing.TB, stdin []byte, args ...string) result {
	t.Helper()
	c := s.cmd(args...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	err := c.Run()
	r := result{out: o.String(), err: e.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r
}

func (s *store) must(t testing.TB, args ...string) string {
	t.Helper()
	r := s.run(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// fails runs a command that must fail with a non-zero exit code and an
// error naming each of want; it returns stderr.
func (s *store) fails(t testing.TB, want []string, args ...string) string {
	t.Helper()
	r := s.run(t, nil, args...)
	if r.code == 0 {
		t.Fatalf("berth %s succeeded, want an error\nstdout: %s", strings.Join(args, " "), r.out)
	}
	for _, w := range want {
		if !strings.Contains(r.err, w) {
			t.Errorf("berth %s: exit %d, stderr %q does not name %q", strings.Join(args, " "), r.code, r.err, w)
		}
	}
	return r.err
}

// pullLayout pulls an image of ../shared/images/oci into s.
func (s *store) pullLayout(t testing.TB, img string) {
	t.Helper()
	s.must(t, "pull", "-q", "oci:"+filepath.Join(shared, "oci")+":"+img)
}

// imageID is the full ID of ref in s.
func (s *store) imageID(t testing.TB, ref string) string {
	t.Helper()
	return strings.TrimSpace(s.must(t, "image", "inspect", "--format", "{{.Id}}", ref))
}

// images is `images --format` of s, one string per row.
func (s *store) images(t testing.TB, args ...string) []string {
	t.Helper()
	return strings.Fields(s.must(t, append([]string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, args...)...))
}

// runImage runs a container of s to its end and returns its output. It
// removes the container itself rather than with --rm: these tests are
// about images, and run --rm has been seen to lose the exit status under
// load ("exit status unknown"), which TestRun* tests are for.
func (s *store) runImage(t testing.TB, args ...string) string {
	t.Helper()
	name := fmt.Sprintf("berth-e2e-img-%d", time.Now().UnixNano())
	defer s.run(t, nil, "rm", "-f", name)
	return s.must(t, append([]string{"run", "--network", "none", "--name", name}, args...)...)
}

// pushWeb pushes the tests' web:1 to a registry of the test and returns
// the reference pushed and the image's ID.
func pushWeb(t *testing.T) (ref, id string) {
	t.Helper()
	ref = testutil.StartRegistry(t, nil) + "/berth/web:1"
	main := mainStore()
	main.must(t, "tag", "web:1", ref)
	t.Cleanup(func() { main.run(t, nil, "rmi", ref) })
	main.must(t, "push", "-q", ref)
	return ref, main.imageID(t, "web:1")
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// TestPushPullRoundTrip tags an image, pushes it to a registry, removes
// it, pulls it back and runs it: same ID, the pushed digest recorded.
func TestPushPullRoundTrip(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	s := newStore(t)
	s.pullLayout(t, "layers:1")
	id := s.imageID(t, "layers:1")
	ref := reg + "/berth/layers:1"
	s.must(t, "tag", "layers:1", ref)
	if got := s.imageID(t, ref); got != id {
		t.Fatalf("tag: %s is %s, want %s", ref, got, id)
	}

	out := s.must(t, "push", ref)
	if !strings.HasPrefix(out, "The push refers to repository ["+reg+"/berth/layers]\n") {
		t.Errorf("push output does not start as Docker's:\n%s", out)
	}
	m := regexp.MustCompile(`(?m)^1: digest: (sha256:[0-9a-f]{64}) size: \d+$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("push did not print the digest line:\n%s", out)
	}
	pushed := m[1]
	if n := strings.Count(out, ": Pushed\n"); n != 5 { // 4 layers and the config
		t.Errorf("push printed %d 'Pushed' lines, want 5:\n%s", n, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("push to a pipe wrote terminal escapes:\n%q", out)
	}
	// As after docker push, the repository digest is known locally.
	if got := strings.TrimSpace(s.must(t, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)); got != `["`+reg+`/berth/layers@`+pushed+`"]` {
		t.Errorf("RepoDigests after push: %s, want the pushed digest %s", got, pushed)
	}
	// A second push sends no blob again.
	out = s.must(t, "push", ref)
	if strings.Contains(out, ": Pushed\n") || !strings.Contains(out, "1: digest: "+pushed) {
		t.Errorf("second push re-uploaded or changed digest:\n%s", out)
	}

	// Remove every name: the image goes.
	out = s.must(t, "rmi", ref, "layers:1")
	if !strings.Contains(out, "Untagged: "+ref+"\n") || !strings.Contains(out, "Deleted: "+id+"\n") {
		t.Errorf("rmi output:\n%s", out)
	}
	if got := s.must(t, "images", "-aq"); got != "" {
		// docker rmi of a tag removes the digest references of that
		// repository when no tag of it is left.
		t.Errorf("images after rmi of every name: %q (names left: %s)", got, s.must(t, "image", "inspect", "--format", "{{.RepoTags}} {{.RepoDigests}}", id))
		s.must(t, "rmi", "-f", id)
	}

	// Pull back: progress as plain per-layer lines on a pipe.
	out = s.must(t, "pull", ref)
	if strings.Contains(out, "\x1b") {
		t.Errorf("pull to a pipe wrote terminal escapes:\n%q", out)
	}
	for _, want := range []string{"1: Pulling from berth/layers\n", "Digest: " + pushed + "\n",
		"Status: Downloaded newer image for " + ref + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("pull output lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n"+ref+"\n") {
		t.Errorf("pull output does not end with the full reference, as Docker's:\n%s", out)
	}
	layerLine := regexp.MustCompile(`(?m)^[0-9a-f]{12}: Download complete$`)
	if n := len(layerLine.FindAllString(out, -1)); n != 4 {
		t.Errorf("pull printed %d 'Download complete' layer lines, want 4:\n%s", n, out)
	}
	if got := s.imageID(t, ref); got != id {
		t.Errorf("pulled image ID %s, want the pushed %s", got, id)
	}
	if got := strings.TrimSpace(s.must(t, "image", "inspect", "--format", "{{.RepoDigests}}", ref)); got != "["+reg+"/berth/layers@"+pushed+"]" {
		t.Errorf("RepoDigests %s, want [%s/berth/layers@%s]", got, reg, pushed)
	}
	rows := strings.TrimSpace(s.must(t, "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}"))
	if want := reg + "/berth/layers 1 " + pushed + " " + strings.TrimPrefix(id, "sha256:")[:12]; rows != want {
		t.Errorf("images --digests: %q, want %q", rows, want)
	}
	// Pulling again changes nothing.
	out = s.must(t, "pull", ref)
	if !strings.Contains(out, "Status: Image is up to date for "+ref+"\n") {
		t.Errorf("second pull:\n%s", out)
	}
	// By digest.
	byDigest := reg + "/berth/layers@" + pushed
	if out := s.must(t, "pull", "-q", byDigest); out != byDigest+"\n" {
		t.Errorf("pull -q by digest printed %q, want %q", out, byDigest+"\n")
	}

	// pull -q prints only the reference, as docker pull -q does.
	s.must(t, "rmi", ref)
	if out := s.must(t, "pull", "-q", ref); out != ref+"\n" {
		t.Errorf("pull -q printed %q, want only %q", out, ref+"\n")
	}
	// The image runs: its config (user, workdir, cmd) and its layers.
	if out := s.runImage(t, ref); out != "hello from layers image: changed\n" {
		t.Fatalf("run of the pulled image: %q", out)
	}
	if out := s.runImage(t, ref, "sh", "-c", "id -u; pwd; cat /data/opaque/c; ls /data/opaque; test -e /data/gone || echo gone"); out != "1000\n/home/app\nnew\nc\ngone\n" {
		t.Errorf("pulled image content: %q", out)
	}
}

// TestPullProgressTerminal pulls with stdout on a pseudo-terminal: the
// progress is redrawn in place with ANSI escapes.
func TestPullProgressTerminal(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	src := newStore(t)
	src.pullLayout(t, "busybox:1.35")
	ref := reg + "/berth/busybox:tty"
	src.must(t, "tag", "busybox:1.35", ref)
	src.must(t, "push", "-q", ref)

	s := newStore(t)
	master, slave, err := openPTY()
	if err != nil {
		t.Fatalf("pseudo-terminal: %v", err)
	}
	defer master.Close()
	unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100})
	cmd := s.cmd("pull", ref)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, master); close(done) }() // ends with EIO when berth exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pull on a terminal: %v\n%s", err, stderr.String())
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output did not end")
	}
	o := out.String()
	// Each layer keeps one line, redrawn in place: cursor up, clear line.
	if !strings.Contains(o, "\x1b[1A\x1b[2K") || !strings.Contains(o, "tty: Pulling from berth/busybox") || !strings.Contains(o, "b39a9a997269: Download complete") {
		t.Errorf("pull on a terminal: no in-place progress lines (want \\x1b[1A\\x1b[2K redraws of the layer's line):\n%q", o)
	}
	if !strings.Contains(o, "Status: Downloaded newer image for "+ref) {
		t.Errorf("pull on a terminal: no status line:\n%q", o)
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// TestLoginBasicAuth logs in to an htpasswd registry: credentials in
// $DOCKER_CONFIG/config.json as Docker writes them, push and pull work,
// a wrong password is refused, logout removes them.
func TestLoginBasicAuth(t *testing.T) {
	reg := testutil.StartRegistry(t, map[string]string{"berth": "s3cret"})
	cfgDir := t.TempDir()
	cfgFile := filepath.Join(cfgDir, "config.json")
	s := newStore(t)
	s.env = []string{"DOCKER_CONFIG=" + cfgDir}
	s.pullLayout(t, "busybox:1.35")
	ref := reg + "/berth/private:1"
	s.must(t, "tag", "busybox:1.35", ref)

	// Not logged in: refused, and said so.
	errOut := s.fails(t, nil, "push", ref)
	if !strings.Contains(strings.ToLower(errOut), "unauthorized") && !strings.Contains(strings.ToLower(errOut), "authentication required") {
		t.Errorf("push without login: %q, want an authentication error", errOut)
	}

	// A wrong password: a clear error, nothing stored.
	r := s.run(t, nil, "login", "-u", "berth", "-p", "wrong", reg)
	if r.code == 0 || !strings.Contains(strings.ToLower(r.err), "unauthorized") && !strings.Contains(strings.ToLower(r.err), "incorrect") {
		t.Errorf("login with a wrong password: exit %d, stderr %q; want a failure saying unauthorized", r.code, r.err)
	}
	if b, err := os.ReadFile(cfgFile); err == nil && strings.Contains(string(b), reg) {
		t.Errorf("a failed login stored credentials:\n%s", b)
	}

	// --password-stdin.
	r = s.run(t, []byte("s3cret\n"), "login", "-u", "berth", "--password-stdin", reg)
	if r.code != 0 || !strings.Contains(r.out, "Login Succeeded") {
		t.Fatalf("login --password-stdin: exit %d out %q err %q", r.code, r.out, r.err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	b, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatalf("login wrote no %s: %v", cfgFile, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("config.json: %v\n%s", err, b)
	}
	if got := cfg.Auths[reg].Auth; got != base64.StdEncoding.EncodeToString([]byte("berth:s3cret")) {
		t.Fatalf("config.json auths[%s].auth = %q, want base64 of berth:s3cret (Docker's format):\n%s", reg, got, b)
	}
	if st, err := os.Stat(cfgFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		t.Errorf("config.json mode %v: credentials readable by others", st.Mode().Perm())
	}

	s.must(t, "push", ref)
	s.must(t, "rmi", ref, "busybox:1.35")
	s.must(t, "pull", ref)
	if out := s.runImage(t, ref, "echo", "authed"); out != "authed\n" {
		t.Errorf("run of the image pulled with credentials: %q", out)
	}

	// -u -p also works (a second login replaces the entry).
	if out := s.must(t, "login", "-u", "berth", "-p", "s3cret", reg); !strings.Contains(out, "Login Succeeded") {
		t.Errorf("login -u -p: %q", out)
	}

	out := s.must(t, "logout", reg)
	if !strings.Contains(out, reg) {
		t.Errorf("logout output %q does not name the registry", out)
	}
	b, _ = os.ReadFile(cfgFile)
	if strings.Contains(string(b), reg) {
		t.Errorf("config.json still names %s after logout:\n%s", reg, b)
	}
	s.must(t, "rmi", ref)
	errOut = s.fails(t, nil, "pull", ref)
	if !strings.Contains(strings.ToLower(errOut), "unauthorized") && !strings.Contains(strings.ToLower(errOut), "authentication required") {
		t.Errorf("pull after logout: %q, want an authentication error", errOut)
	}
	if rows := s.images(t); len(rows) != 0 {
		t.Errorf("failed pull left images: %v", rows)
	}
}

// TestSaveLoadRoundTrip saves images in both archive formats, to a file
// and to stdout, and loads them (file and stdin, gzip or not) into empty
// stores: the same image IDs, and the images run.
func TestSaveLoadRoundTrip(t *testing.T) {
	src := mainStore()
	want := map[string]string{}
	for _, img := range []string{"busybox:1.35", "layers:1"} {
		want[img] = src.imageID(t, img)
	}
	dir := t.TempDir()

	check := func(t *testing.T, s *store, out string) {
		t.Helper()
		for img, id := range want {
			if !strings.Contains(out, "Loaded image: "+img+"\n") {
				t.Errorf("load output lacks %q:\n%s", "Loaded image: "+img, out)
			}
			if got := s.imageID(t, img); got != id {
				t.Errorf("loaded %s has ID %s, want %s", img, got, id)
			}
		}
		if rows := s.images(t); len(rows) != 2 {
			t.Errorf("images after load: %v, want the two images", rows)
		}
		if out := s.runImage(t, "layers:1"); out != "hello from layers image: changed\n" {
			t.Errorf("run of the loaded layers:1: %q", out)
		}
	}

	t.Run("docker-archive-file", func(t *testing.T) {
		f := filepath.Join(dir, "both.tar")
		if out := src.must(t, "save", "-o", f, "busybox:1.35", "layers:1"); out != "" {
			t.Errorf("save -o printed %q", out)
		}
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, ".berth-save-*")); len(m) > 0 {
			t.Errorf("save left temp files: %v", m)
		}
		s := newStore(t)
		check(t, s, s.must(t, "load", "-i", f))
	})
	t.Run("docker-archive-gzip-stdin", func(t *testing.T) {
		out := src.must(t, "save", "busybox:1.35", "layers:1")
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write([]byte(out))
		w.Close()
		s := newStore(t)
		r := s.run(t, gz.Bytes(), "load")
		if r.code != 0 {
			t.Fatalf("load of gzip from stdin: exit %d: %s", r.code, r.err)
		}
		check(t, s, r.out)
	})
	t.Run("oci-archive-stdout", func(t *testing.T) {
		out := src.must(t, "save", "--format", "oci-archive", "busybox:1.35", "layers:1")
		if !strings.Contains(out, "oci-layout") || !strings.Contains(out, "index.json") {
			t.Fatalf("save --format oci-archive: no oci-layout/index.json in the tar")
		}
		f := filepath.Join(dir, "both.oci.tar")
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		s := newStore(t)
		r := s.run(t, []byte(out), "load")
		if r.code != 0 {
			t.Fatalf("load of an oci-archive from stdin: exit %d: %s", r.code, r.err)
		}
		check(t, s, r.out)
		s2 := newStore(t)
		check(t, s2, s2.must(t, "load", "-i", f))
	})
	t.Run("bad-format", func(t *testing.T) {
		src.fails(t, []string{"tarball"}, "save", "--format", "tarball", "-o", filepath.Join(dir, "x.tar"), "busybox:1.35")
		if _, err := os.Stat(filepath.Join(dir, "x.tar")); err == nil {
			t.Error("save with a bad format wrote the file")
		}
		src.fails(t, []string{"nosuch"}, "save", "-o", filepath.Join(dir, "y.tar"), "nosuch:1")
		if _, err := os.Stat(filepath.Join(dir, "y.tar")); err == nil {
			t.Error("save of a missing image wrote the file")
		}
	})
}

// TestLoadDockerArchives loads the docker-save archives of
// ../shared/images: the same images as the OCI layout's.
func TestLoadDockerArchives(t *testing.T) {
	s := newStore(t)
	out := s.must(t, "load", "-i", filepath.Join(shared, "busybox.docker.tar.gz"))
	if out != "Loaded image: busybox:1.35\n" && !strings.HasSuffix(out, "\nLoaded image: busybox:1.35\n") {
		t.Errorf("load busybox.docker.tar.gz printed:\n%s", out)
	}
	data, err := os.ReadFile(filepath.Join(shared, "layers.docker.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	r := s.run(t, data, "load", "-q")
	if r.code != 0 || r.out != "Loaded image: layers:1\n" {
		t.Errorf("load -q < layers.docker.tar.gz: exit %d out %q err %q", r.code, r.out, r.err)
	}
	if out := s.runImage(t, "layers:1", "sh", "-c", "hello; cat /data/hard; stat -c %a /bin/busybox; stat -c %u:%g /home/app/work"); out != "hello from layers image: changed\none\n4755\n1000:1000\n" {
		t.Errorf("layers:1 loaded from the docker archive: %q", out)
	}
	if out := s.runImage(t, "busybox:1.35", "echo", "ok"); out != "ok\n" {
		t.Errorf("busybox loaded from the docker archive: %q", out)
	}
	// The layers are shared: busybox's one layer is layers:1's first.
	bb := strings.TrimSpace(s.must(t, "image", "inspect", "--format", "{{json .RootFS.Layers}}", "busybox:1.35"))
	ly := strings.TrimSpace(s.must(t, "image", "inspect", "--format", "{{json .RootFS.Layers}}", "layers:1"))
	var bl, ll []string
	json.Unmarshal([]byte(bb), &bl)
	json.Unmarshal([]byte(ly), &ll)
	if len(bl) != 1 || len(ll) != 4 || bl[0] != ll[0] {
		t.Errorf("RootFS.Layers: busybox %v, layers %v", bl, ll)
	}
}

// TestLoadBadArchive feeds load a truncated and a garbage archive: a
// clear error, non-zero exit, nothing registered.
func TestLoadBadArchive(t *testing.T) {
	s := newStore(t)
	full, err := os.ReadFile(filepath.Join(shared, "layers.docker.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "truncated.tar.gz")
	if err := os.WriteFile(f, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	errOut := s.fails(t, []string{"truncated.tar.gz"}, "load", "-i", f)
	if !strings.Contains(errOut, "EOF") && !strings.Contains(errOut, "truncated") {
		t.Errorf("load of a truncated archive: %q, want it to say the archive ends early", errOut)
	}
	r := s.run(t, []byte("this is not an image archive\n"), "load")
	if r.code == 0 || !strings.Contains(r.err, "tar") {
		t.Errorf("load of garbage: exit %d stderr %q, want an error saying it is not a tar archive", r.code, r.err)
	}
	s.fails(t, []string{"no-such-file.tar"}, "load", "-i", filepath.Join(t.TempDir(), "no-such-file.tar"))
	if rows := s.must(t, "images", "-aq"); rows != "" {
		t.Errorf("failed loads left images: %q", rows)
	}
	// The store is fine for the next command.
	s.must(t, "load", "-i", filepath.Join(shared, "busybox.docker.tar.gz"))
	if rows := s.images(t); !slices.Equal(rows, []string{"busybox:1.35"}) {
		t.Errorf("images after a good load: %v", rows)
	}
}

// layoutLayer returns the first layer blob (a gzip rootfs tarball) of an
// image in ../shared/images/oci.
func layoutLayer(t *testing.T, img string) string {
	t.Helper()
	oci := filepath.Join(shared, "oci")
	var idx struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	b, err := os.ReadFile(filepath.Join(oci, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil {
		t.Fatal(err)
	}
	blob := func(d string) string { return filepath.Join(oci, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")) }
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != img {
			continue
		}
		var man struct{ Layers []struct{ Digest string } }
		b, err := os.ReadFile(blob(m.Digest))
		if err == nil {
			err = json.Unmarshal(b, &man)
		}
		if err != nil {
			t.Fatal(err)
		}
		return blob(man.Layers[0].Digest)
	}
	t.Fatalf("%s not in %s", img, oci)
	return ""
}

// TestImportRootfs imports a rootfs tarball with --change, and runs it.
func TestImportRootfs(t *testing.T) {
	s := newStore(t)
	tarball := layoutLayer(t, "busybox:1.35") // gzip-compressed, as users' often are
	out := s.must(t, "import", "--change", `CMD ["/bin/sh","-c","echo imported"]`, "--change", "ENV A=b", "-m", "from e2e", tarball, "berth-imported:1")
	id := strings.TrimSpace(out)
	if !digestRE.MatchString(id) {
		t.Fatalf("import printed %q, want the image ID", out)
	}
	if got := s.imageID(t, "berth-imported:1"); got != id {
		t.Fatalf("berth-imported:1 is %s, import printed %s", got, id)
	}
	if out := s.runImage(t, "berth-imported:1"); out != "imported\n" {
		t.Errorf("run of the imported image: %q, want the CMD of --change", out)
	}
	if out := s.runImage(t, "berth-imported:1", "sh", "-c", "echo $A"); out != "b\n" {
		t.Errorf("ENV of --change: %q", out)
	}
	cfg := strings.TrimSpace(s.must(t, "image", "inspect", "--format", "{{json .Config.Cmd}} {{json .Config.Env}} {{.Comment}}", "berth-imported:1"))
	if !strings.HasPrefix(cfg, `["/bin/sh","-c","echo imported"] `) || !strings.Contains(cfg, `"A=b"`) || !strings.HasSuffix(cfg, "from e2e") {
		t.Errorf("imported image config: %s", cfg)
	}
	if h := s.must(t, "history", "berth-imported:1"); !strings.Contains(h, "from e2e") {
		t.Errorf("history of the imported image lacks the message:\n%s", h)
	}

	// From stdin, untagged: a dangling image.
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	r := s.run(t, data, "import", "-")
	if r.code != 0 || !digestRE.MatchString(strings.TrimSpace(r.out)) {
		t.Fatalf("import - : exit %d out %q err %q", r.code, r.out, r.err)
	}
	if got := s.must(t, "images", "--filter", "dangling=true", "-q"); got == "" {
		t.Errorf("untagged import not listed as dangling")
	}

	// Bad input.
	s.fails(t, []string{"FROBNICATE"}, "import", "--change", "FROBNICATE x", tarball, "berth-bad:1")
	r = s.run(t, []byte("not a tar"), "import", "-", "berth-bad:2")
	if r.code == 0 {
		t.Errorf("import of garbage succeeded: %q", r.out)
	}
	for _, row := range s.images(t) {
		if strings.HasPrefix(row, "berth-bad") {
			t.Errorf("failed import left %s", row)
		}
	}
}

// TestImagesListAndFilters checks images' -q, --format, --digests,
// filters and repository argument.
func TestImagesListAndFilters(t *testing.T) {
	s := newStore(t)
	s.pullLayout(t, "busybox:1.35")
	s.pullLayout(t, "layers:1")
	s.must(t, "tag", "busybox:1.35", "berth-e2e/bb:a")
	bb, ly := s.imageID(t, "busybox:1.35"), s.imageID(t, "layers:1")
	short := func(id string) string { return strings.TrimPrefix(id, "sha256:")[:12] }
	s.must(t, "tag", short(bb)[:8], "berth-e2e/bb:b")                   // by ID prefix
	s.fails(t, []string{"busybox"}, "tag", "busybox", "berth-e2e/bb:c") // busybox:latest does not exist
	s.fails(t, []string{"Upper", "lowercase"}, "tag", "busybox:1.35", "Upper")

	rows := s.images(t)
	sort.Strings(rows)
	if want := []string{"berth-e2e/bb:a", "berth-e2e/bb:b", "busybox:1.35", "layers:1"}; !slices.Equal(rows, want) {
		t.Errorf("images: %v, want %v", rows, want)
	}
	if q := strings.Fields(s.must(t, "images", "-q")); len(q) != 2 || !slices.Contains(q, short(bb)) || !slices.Contains(q, short(ly)) {
		t.Errorf("images -q: %v, want each image once (%s, %s)", q, short(bb), short(ly))
	}
	if q := strings.Fields(s.must(t, "images", "-q", "--no-trunc")); !slices.Contains(q, bb) {
		t.Errorf("images -q --no-trunc: %v", q)
	}
	if got := s.images(t, "--filter", "reference=berth-e2e/*"); len(got) != 2 {
		t.Errorf("--filter reference=berth-e2e/*: %v", got)
	}
	if got := s.images(t, "berth-e2e/bb:a"); !slices.Equal(got, []string{"berth-e2e/bb:a"}) {
		t.Errorf("images REPO:TAG: %v", got)
	}
	if got := s.images(t, "--filter", "reference=layers"); !slices.Equal(got, []string{"layers:1"}) {
		t.Errorf("--filter reference=layers: %v", got)
	}
	head := strings.SplitN(s.must(t, "images", "--digests"), "\n", 2)[0]
	if strings.Join(strings.Fields(head), " ") != "REPOSITORY TAG DIGEST IMAGE ID CREATED SIZE" {
		t.Errorf("images --digests header: %q", head)
	}
	if got := s.must(t, "images", "--format", "{{.ID}} {{.Size}}", "layers:1"); !regexp.MustCompile(`^` + short(ly) + ` [0-9.]+[kM]B\n$`).MatchString(got) {
		t.Errorf("--format {{.ID}} {{.Size}}: %q", got)
	}
	if got := s.must(t, "images", "--format", "{{json .}}", "layers:1"); !json.Valid([]byte(strings.TrimSpace(got))) {
		t.Errorf("--format {{json .}}: not JSON: %q", got)
	}
	// A dangling image: layers:1's name moved to another image.
	s.must(t, "tag", "busybox:1.35", "layers:1")
	if got := strings.Fields(s.must(t, "images", "--filter", "dangling=true", "--format", "{{.Repository}}:{{.Tag}}:{{.ID}}")); !slices.Equal(got, []string{"<none>:<none>:" + short(ly)}) {
		t.Errorf("--filter dangling=true: %v", got)
	}
	if got := s.images(t, "--filter", "dangling=false"); len(got) != 4 {
		t.Errorf("--filter dangling=false: %v", got)
	}
	s.fails(t, []string{"nosuchfilter"}, "images", "--filter", "nosuchfilter=1")
}

// TestImageRemove checks rmi: untag versus delete, an image in use by a
// container, -f, by ID, and a name that does not exist.
func TestImageRemove(t *testing.T) {
	s := newStore(t)
	s.pullLayout(t, "busybox:1.35")
	id := s.imageID(t, "busybox:1.35")
	s.must(t, "tag", "busybox:1.35", "berth-e2e/two:1")

	// By name, with another name left: untag only.
	if out := s.must(t, "rmi", "berth-e2e/two:1"); out != "Untagged: berth-e2e/two:1\n" {
		t.Errorf("rmi of one of two names: %q, want only the untag", out)
	}
	if got := s.imageID(t, "busybox:1.35"); got != id {
		t.Fatal("image gone after untagging another name")
	}

	// By ID with names in two repositories: refused without -f.
	s.must(t, "tag", "busybox:1.35", "berth-e2e/two:1")
	s.fails(t, []string{"must be forced"}, "rmi", id[7:19])
	if len(s.images(t)) != 2 {
		t.Fatal("refused rmi removed something")
	}

	// In use by a container: refused with a clear error, even by ID with -f
	// the image stays for the container.
	cid := strings.TrimSpace(s.must(t, "create", "--network", "none", "--name", "berth-e2e-user", "busybox:1.35", "true"))
	s.must(t, "rmi", "berth-e2e/two:1")
	errOut := s.fails(t, []string{"busybox:1.35", "container"}, "rmi", "busybox:1.35")
	if !strings.Contains(errOut, cid[:12]) && !strings.Contains(errOut, "berth-e2e-user") && !strings.Contains(errOut, id[7:19]) {
		t.Errorf("rmi of an image in use: %q names neither the container nor the image", errOut)
	}
	if got := s.imageID(t, "busybox:1.35"); got != id {
		t.Fatal("refused rmi removed the image")
	}
	out := s.must(t, "rmi", "-f", "busybox:1.35")
	if !strings.Contains(out, "Untagged: busybox:1.35") || strings.Contains(out, "Deleted: "+id) {
		t.Errorf("rmi -f of an image in use: %q, want untagged and kept for the container", out)
	}
	if r := s.run(t, nil, "start", "-a", cid); r.code != 0 {
		t.Errorf("the container cannot start after rmi -f of its image: exit %d %s", r.code, r.err)
	}
	s.must(t, "rm", cid)
	// Now unused and untagged: delete by ID.
	out = s.must(t, "rmi", id)
	if !strings.Contains(out, "Deleted: "+id) {
		t.Errorf("rmi by ID: %q", out)
	}
	if got := s.must(t, "images", "-aq"); got != "" {
		t.Errorf("images after deleting everything: %q", got)
	}

	// Bad names: exit 1, named in the error; the others are still removed.
	s.pullLayout(t, "busybox:1.35")
	r := s.run(t, nil, "rmi", "nosuch", "busybox:1.35")
	if r.code != 1 || !strings.Contains(r.err, "nosuch") || !strings.Contains(r.out, "Untagged: busybox:1.35") {
		t.Errorf("rmi nosuch busybox:1.35: exit %d out %q err %q; want exit 1, an error naming nosuch, busybox removed", r.code, r.out, r.err)
	}
	s.fails(t, []string{"Upper", "lowercase"}, "rmi", "Upper")
}

// TestImagePrune removes dangling images, then with -a every image no
// container uses.
func TestImagePrune(t *testing.T) {
	s := newStore(t)
	s.pullLayout(t, "busybox:1.35")
	s.pullLayout(t, "layers:1")
	ly := s.imageID(t, "layers:1")
	s.must(t, "tag", "busybox:1.35", "layers:1") // layers:1's image is now dangling
	out := s.must(t, "image", "prune", "-f")
	if !strings.Contains(out, "deleted: "+ly) || !regexp.MustCompile(`Total reclaimed space: [1-9][0-9.]*[kM]B`).MatchString(out) {
		t.Errorf("image prune:\n%s", out)
	}
	if got := s.must(t, "images", "-aq", "--no-trunc"); strings.Contains(got, ly) {
		t.Errorf("dangling image still listed after prune: %q", got)
	}
	if out := s.must(t, "image", "prune", "-f"); !strings.Contains(out, "Total reclaimed space: 0B") {
		t.Errorf("second prune: %q", out)
	}

	// -a: every image no container uses.
	s.pullLayout(t, "layers:1")
	s.must(t, "tag", "layers:1", "berth-e2e/keep:1")
	cid := strings.TrimSpace(s.must(t, "create", "--network", "none", "berth-e2e/keep:1", "true"))
	out = s.must(t, "image", "prune", "-a", "-f")
	if !strings.Contains(out, "untagged: busybox:1.35") {
		t.Errorf("prune -a did not remove the unused busybox:\n%s", out)
	}
	if got := s.images(t); len(got) != 2 || !slices.Contains(got, "berth-e2e/keep:1") {
		t.Errorf("after prune -a: %v, want the used image with its names only", got)
	}
	s.must(t, "rm", cid)
	s.must(t, "image", "prune", "-a", "-f")
	if got := s.must(t, "images", "-aq"); got != "" {
		t.Errorf("after prune -a with no container: %q", got)
	}
	if out := s.must(t, "system", "df"); !regexp.MustCompile(`(?m)^Images\s+0\s+0\s+0B`).MatchString(out) {
		t.Errorf("system df after pruning everything:\n%s", out)
	}
}

// TestImageInspectHistoryDf checks inspect's Docker shape, history and
// system df.
func TestImageInspectHistoryDf(t *testing.T) {
	s := mainStore()
	out := s.must(t, "image", "inspect", "layers:1")
	var docs []map[string]any
	if err := json.Unmarshal([]byte(out), &docs); err != nil || len(docs) != 1 {
		t.Fatalf("image inspect is not a JSON array of one object: %v\n%s", err, out)
	}
	d := docs[0]
	for _, k := range []string{"Id", "RepoTags", "RepoDigests", "Created", "Config", "RootFS", "Os", "Architecture", "Size"} {
		if _, ok := d[k]; !ok {
			t.Errorf("image inspect lacks %s", k)
		}
	}
	if id, _ := d["Id"].(string); !digestRE.MatchString(id) {
		t.Errorf("Id %v", d["Id"])
	}
	if tags, _ := d["RepoTags"].([]any); len(tags) != 1 || tags[0] != "layers:1" {
		t.Errorf("RepoTags %v", d["RepoTags"])
	}
	if _, ok := d["RepoDigests"].([]any); !ok {
		t.Errorf("RepoDigests %v, want a list (empty for a local image)", d["RepoDigests"])
	}
	cfg, _ := d["Config"].(map[string]any)
	if cfg["User"] != "app" || cfg["WorkingDir"] != "/home/app" || fmt.Sprint(cfg["Cmd"]) != "[hello]" {
		t.Errorf("Config: %v", cfg)
	}
	rootfs, _ := d["RootFS"].(map[string]any)
	if layers, _ := rootfs["Layers"].([]any); rootfs["Type"] != "layers" || len(layers) != 4 {
		t.Errorf("RootFS: %v, want Type layers and 4 diff IDs", rootfs)
	}
	if got := strings.TrimSpace(s.must(t, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}} {{index .RepoTags 0}} {{len .RootFS.Layers}}", "layers:1")); !strings.HasSuffix(got, " layers:1 4") || !strings.HasPrefix(got, "linux/") {
		t.Errorf("inspect --format: %q", got)
	}
	// A container is not an image.
	s.fails(t, []string{"nosuch"}, "image", "inspect", "nosuch:1")

	hist := s.must(t, "history", "layers:1")
	lines := strings.Split(strings.TrimSpace(hist), "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != "IMAGE CREATED CREATED BY SIZE COMMENT" || len(lines) < 5 {
		t.Errorf("history layers:1:\n%s", hist)
	}
	if !strings.Contains(hist, "<missing>") && !strings.Contains(hist, strings.TrimPrefix(s.imageID(t, "layers:1"), "sha256:")[:12]) {
		t.Errorf("history does not show the image ID on the top row:\n%s", hist)
	}
	if q := strings.Fields(s.must(t, "history", "-q", "layers:1")); len(q) != len(lines)-1 {
		t.Errorf("history -q: %d rows, table %d", len(q), len(lines)-1)
	}
	if nt := s.must(t, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "layers:1"); !strings.Contains(nt, "hello") {
		t.Errorf("history --no-trunc --format: %q", nt)
	}
	s.fails(t, []string{"nosuch"}, "history", "nosuch:1")

	df := s.must(t, "system", "df")
	m := regexp.MustCompile(`(?m)^Images\s+(\d+)\s+(\d+)\s+(\S+)\s+`).FindStringSubmatch(df)
	if m == nil || m[1] == "0" || m[3] == "0B" {
		t.Errorf("system df:\n%s", df)
	}
}

// TestPullBadInput: a tag the registry does not have, an invalid
// reference, a registry that is not there.
func TestPullBadInput(t *testing.T) {
	reg := testutil.StartRegistry(t, nil)
	s := newStore(t)
	for _, tc := range []struct {
		ref  string
		want []string
	}{
		{reg + "/berth/nothing:nosuch", []string{reg + "/berth/nothing:nosuch", "not found"}},
		{"Upper:1", []string{"Upper:1", "lowercase"}},
		// As for Docker, the upper-case first component is a registry host.
		{"UPPER/case", []string{"UPPER/case"}},
		{"busybox:bad:tag", []string{"busybox:bad:tag", "invalid reference format"}},
		{"127.0.0.1:1/berth/x:1", []string{"127.0.0.1:1", "connection refused"}},
		{"oci:" + t.TempDir() + ":x", []string{"oci-layout"}},
	} {
		r := s.run(t, nil, "pull", tc.ref)
		if r.code != 1 {
			t.Errorf("pull %s: exit %d, want 1 (as docker pull)", tc.ref, r.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.err, w) {
				t.Errorf("pull %s: stderr %q does not say %q", tc.ref, r.err, w)
			}
		}
	}
	if got := s.must(t, "images", "-aq"); got != "" {
		t.Errorf("failed pulls left images: %q", got)
	}
	s.fails(t, []string{"nosuch"}, "push", "nosuch:1")
	s.fails(t, []string{"nosuch:1"}, "tag", "nosuch:1", "berth-e2e/x:1")
}

// TestPullKilledMidway kills `berth pull` of a large image while it
// downloads: no partial image is ever listed, and the next pull completes
// and lists the image once.
func TestPullKilledMidway(t *testing.T) {
	ref, want := pushWeb(t)

	s := newStore(t)
	cmd := s.cmd("pull", ref)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// While layers download, no image is listed; kill it once a layer
	// finished downloading and others are under way.
	var seen []string
	checked := false
	timeout := time.After(60 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("the pull ended before it could be killed:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if !checked && strings.Contains(l, ": Downloading") {
				checked = true
				if got := s.must(t, "images", "-a", "-q"); got != "" {
					t.Errorf("an image is listed while its layers download: %q", got)
				}
			}
			if strings.HasSuffix(l, ": Download complete") {
				cmd.Process.Kill()
				break wait
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no layer completed within 60 s:\n%s", strings.Join(seen, "\n"))
		}
	}
	for range lines {
	}
	cmd.Wait()
	if got := s.must(t, "images", "-a", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"); got != "" {
		t.Fatalf("a killed pull left a visible image: %q", got)
	}
	out := s.must(t, "pull", ref)
	if !strings.Contains(out, "Already exists") && !strings.Contains(out, "resum") {
		t.Logf("second pull re-downloaded everything (no 'Already exists' line):\n%s", out)
	}
	if rows := s.images(t, "-a"); !slices.Equal(rows, []string{ref}) {
		t.Errorf("images after the second pull: %v, want %s once", rows, ref)
	}
	if got := s.imageID(t, ref); got != want {
		t.Errorf("pulled ID %s, want %s", got, want)
	}
	if out := s.runImage(t, ref, "cat", "/var/www/html/index.html"); !strings.Contains(out, "served from a container") {
		t.Errorf("web:1 after the resumed pull: %q", out)
	}
}
