// Package testutil holds what the tests of several packages share: the
// root requirement, the repository's shared test images, the binaries
// under test, a local docker-registry and leak lists. Only tests import it.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// RequireRoot skips a test that needs root, except under CI (CI=true,
// which runs as root), where running it without root fails. why says what
// the test does that takes root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs root (%s); CI must run go test as root", why)
	}
	t.Skipf("this test needs root (%s); run go test as root (CI does)", why)
}

// MainRequiresRoot is RequireRoot for the TestMain of a suite that needs
// root throughout: ok as root; otherwise it says so on stderr and returns
// the exit code, 1 under CI (CI=true) and 0 elsewhere.
func MainRequiresRoot(suite string) (code int, ok bool) {
	if os.Geteuid() == 0 {
		return 0, true
	}
	if os.Getenv("CI") == "true" {
		fmt.Fprintf(os.Stderr, "%s need root, and CI runs as root: failing\n", suite)
		return 1, false
	}
	fmt.Fprintf(os.Stderr, "%s need root: skipped\n", suite)
	return 0, false
}

// RepoRoot is the repository's root: the first directory holding go.mod
// above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root (go.mod) not found above the working directory")
		}
		dir = parent
	}
}

// FindSharedImages returns the shared test images, ../shared/images next
// to the repository (its OCI layout is oci/ in it).
func FindSharedImages() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "..", "shared", "images")
	if _, err := os.Stat(filepath.Join(p, "oci", "index.json")); err != nil {
		return "", fmt.Errorf("the shared test images are missing (../shared/images/oci next to the repository): %w", err)
	}
	return p, nil
}

// SharedImages is FindSharedImages for a test, which fails without them.
func SharedImages(t testing.TB) string {
	t.Helper()
	p, err := FindSharedImages()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Binary returns the binary under test named by the environment variable
// env or, when it is unset, builds the repository's cmd/name into
// dir/name (the build's output goes to stderr).
func Binary(env, dir, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-tags", "netgo osusergo", "-o", p, "./cmd/"+name)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", name, err)
	}
	return p, nil
}

var aptMu sync.Mutex

// NeedBinary returns the path of bin, installing the Debian package pkg
// when it is missing (which takes root: see RequireRoot).
func NeedBinary(t testing.TB, bin, pkg string) string {
	t.Helper()
	aptMu.Lock()
	defer aptMu.Unlock()
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	RequireRoot(t, fmt.Sprintf("%s is missing, and apt-get install %s", bin, pkg))
	out, err := exec.Command("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("%s missing, and apt-get install %s failed: %v\n%s", bin, pkg, err, out)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s not found after installing %s", bin, pkg)
	}
	return p
}

// Added lists, sorted, the keys of after that are not in before: what a
// test left behind, between two snapshots of the host.
func Added(before, after map[string]bool) []string {
	var l []string
	for k := range after {
		if !before[k] {
			l = append(l, k)
		}
	}
	sort.Strings(l)
	return l
}
