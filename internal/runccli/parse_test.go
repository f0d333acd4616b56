package runccli

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func TestParseUser(t *testing.T) {
	u, err := parseUser("1000:100")
	if err != nil || u.UID != 1000 || u.GID != 100 {
		t.Errorf("parseUser(1000:100) = %+v %v", u, err)
	}
	if u, err := parseUser("7"); err != nil || u.UID != 7 || u.GID != 0 {
		t.Errorf("parseUser(7) = %+v %v", u, err)
	}
	for _, in := range []string{"root", "1:x", ""} {
		if _, err := parseUser(in); err == nil {
			t.Errorf("parseUser(%q) accepted", in)
		}
	}
}

func TestFilterPs(t *testing.T) {
	out := []byte("UID  PID  PPID CMD\nroot 1 0 init\nroot 42 1 sleep 100\nroot 43 1 other\n")
	r, w, _ := os.Pipe()
	saved := os.Stdout
	os.Stdout = w
	err := filterPs(out, []int{42})
	w.Close()
	os.Stdout = saved
	var buf bytes.Buffer
	io.Copy(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "sleep 100") {
		t.Errorf("filterPs printed %q", buf.String())
	}
}
