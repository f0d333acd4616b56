package caps

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestNumber(t *testing.T) {
	for name, want := range map[string]int{"CAP_CHOWN": 0, "SYS_ADMIN": 21, "cap_net_raw": 13, "CAP_CHECKPOINT_RESTORE": 40} {
		if n, ok := Number(name); !ok || n != want {
			t.Errorf("Number(%q) = %d, %v; want %d", name, n, ok, want)
		}
	}
	if _, ok := Number("CAP_BOGUS"); ok {
		t.Error("CAP_BOGUS is known")
	}
}

func TestFromSpec(t *testing.T) {
	s, skipped, err := FromSpec(&specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_KILL"},
		Effective: []string{"CAP_KILL"},
		Permitted: []string{"CAP_CHOWN", "CAP_KILL"},
		Ambient:   []string{"CAP_KILL"},
	})
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	if s.Bounding != 1<<0|1<<5 || s.Effective != 1<<5 || s.Inheritable != 0 || s.Ambient != 1<<5 {
		t.Errorf("sets %+v", s)
	}
	if _, _, err := FromSpec(&specs.LinuxCapabilities{Effective: []string{"CAP_NOPE"}}); err == nil || !strings.Contains(err.Error(), "process.capabilities.effective") {
		t.Errorf("unknown capability: %v", err)
	}
}
