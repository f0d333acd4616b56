package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// treeState describes every entry of a tree by relative path (inode
// numbers left out, since they differ between copies).
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	m := snapshot(t, root, "")
	out := map[string]string{}
	for p, v := range m {
		rel, _ := filepath.Rel(root, p)
		f := strings.Fields(v)
		var keep []string
		for _, x := range f {
			if !strings.HasPrefix(x, "ino=") && !(rel == "." && strings.HasPrefix(x, "mtime=")) {
				keep = append(keep, x)
			}
		}
		out[rel] = strings.Join(keep, " ")
	}
	return out
}

// TestWriteDiffRoundTrip changes a copy of a tree, writes the diff, and
// checks that applying it onto another copy of the original reproduces
// the changed tree exactly.
func TestWriteDiffRoundTrip(t *testing.T) {
	requireRoot(t)
	base, err := os.MkdirTemp("", "berth-archive-diff-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	lower, upper, again := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "again")
	l := layer(t,
		dir("etc/"), file("etc/hosts", "127.0.0.1 localhost\n"), file("etc/motd", "hi"),
		dir("var/"), dir("var/lib/"), file("var/lib/db", "1234"), file("var/lib/same", "same"),
		symlink("lnk", "etc/hosts"), dir("bin/"), ent{name: "bin/su", typ: tar.TypeReg, mode: 0o4755, body: "su"},
		hardlink("bin/su2", "bin/su"), dir("gone/"), file("gone/x", "x"),
	)
	for _, d := range []string{lower, upper, again} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		apply(t, d, l, ApplyOptions{})
	}
	// Change upper: edit, delete, add, chmod, chown, xattr, retarget a link.
	later := testTime.Add(time.Hour)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(upper, "var/lib/db"), []byte("5678"), 0o644)) // same size
	must(os.Chtimes(filepath.Join(upper, "var/lib/db"), testTime, testTime))      // and same mtime
	must(os.Remove(filepath.Join(upper, "etc/motd")))
	must(os.RemoveAll(filepath.Join(upper, "gone")))
	must(os.WriteFile(filepath.Join(upper, "etc/new"), []byte("new"), 0o600))
	must(os.Chown(filepath.Join(upper, "etc/new"), 1000, 1000))
	must(os.Chmod(filepath.Join(upper, "etc/hosts"), 0o600))
	must(os.Remove(filepath.Join(upper, "lnk")))
	must(os.Symlink("etc/new", filepath.Join(upper, "lnk")))
	must(os.MkdirAll(filepath.Join(upper, "srv/www"), 0o755))
	must(os.Chtimes(filepath.Join(upper, "srv/www"), later, later))
	for _, d := range []string{"etc", "var/lib", "srv", ""} {
		must(os.Chtimes(filepath.Join(upper, d), later, later))
	}

	var buf bytes.Buffer
	if err := WriteDiff(&buf, lower, upper, DiffOptions{}); err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, buf.Bytes())
	sort.Strings(names)
	want := []string{"etc/", "etc/.wh.motd", "etc/hosts", "etc/new", ".wh.gone", "lnk", "srv/", "srv/www/", "var/lib/", "var/lib/db"}
	sort.Strings(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("diff entries:\n got %v\nwant %v", names, want)
	}
	apply(t, again, buf.Bytes(), ApplyOptions{})
	diffStates(t, "tree rebuilt from the diff", treeState(t, upper), treeState(t, again))
}
