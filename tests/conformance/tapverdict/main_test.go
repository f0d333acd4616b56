package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// insideTAP is runtimetest output as util.RuntimeInsideValidate embeds it:
// one pass, one capability failure and room for more results.
const insideTAP = `TAP version 13
  ---
  {
    "stderr": "",
    "stdout": "TAP version 13\nok 1 - has expected working directory\nnot ok 2 - unexpected bounding capability CAP_SYS_ADMIN not set\n%s1..%d\n"
  }
  ...
not ok 1 - check hostname "x"
1..1
`

var capabilities = patterns{regexp.MustCompile(`capability CAP_[A-Z_]+ `)}

// insideWith adds the results in extra (count of them: n) to insideTAP.
func insideWith(extra string, n int) string {
	s := strings.Replace(insideTAP, "%s", extra, 1)
	return strings.Replace(s, "%d", strconv.Itoa(2+n), 1)
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name    string
		tap     string
		kind    kind
		exit    int
		later   patterns
		want    string
		wantBad int
	}{
		{
			name: "all ok",
			tap:  "TAP version 13\nok 1 - a\n  ---\n  {\n    \"x\": 1\n  }\n  ...\nok 2 # SKIP not set\n1..2\n",
			kind: kindNormal,
			want: "pass 2 0 1 2 0 no",
		},
		{
			name: "every subtest skipped",
			tap:  "TAP version 13\nok 1 # skip linux only\n1..1\n",
			kind: kindNormal,
			want: "skip 1 0 1 1 0 no",
		},
		{
			name: "two streams, plans summed",
			tap:  "TAP version 13\nok 1 - a\nok 2 - b\n1..2\nTAP version 13\n1..0\n",
			kind: kindNormal,
			want: "pass 2 0 0 2 0 no",
		},
		{
			name: "fewer results than planned",
			tap:  "TAP version 13\nok 1 - a\n1..2\n",
			kind: kindNormal,
			want: "fail 1 0 0 2 0 no", wantBad: 0,
		},
		{
			name: "empty plan is no test",
			tap:  "TAP version 13\n1..0\n",
			kind: kindNormal,
			want: "fail 0 0 0 0 0 no",
		},
		{
			name: "non-zero exit",
			tap:  "TAP version 13\nok 1 - a\n1..1\n",
			kind: kindNormal,
			exit: 1,
			want: "fail 1 0 0 1 1 no",
		},
		{
			name: "timeout",
			tap:  "TAP version 13\nok 1 - a\n",
			kind: kindNormal,
			exit: 124,
			want: "timeout 1 0 0 - 124 no",
		},
		{
			name: "capability failure inside the container excused",
			tap:  insideWith("", 0),
			kind: kindNormal, later: capabilities,
			want: "fail 0 1 0 1 0 yes",
		},
		{
			name: "other failure inside the container not excused",
			tap:  insideWith(`not ok 3 - has expected hostname\n`, 1),
			kind: kindNormal, later: capabilities,
			want: "fail 0 1 0 1 0 no", wantBad: 1,
		},
		{
			name: "capability failure without patterns not excused",
			tap:  insideWith("", 0),
			kind: kindNormal,
			want: "fail 0 1 0 1 0 no", wantBad: 1,
		},
		{
			name: "top-level capability failure excused",
			tap:  "TAP version 13\nok 1 - a\nnot ok 2 - expected effective capability CAP_CHOWN set\n1..2\n",
			kind: kindNormal, later: capabilities,
			want: "fail 1 1 0 2 0 yes",
		},
		{
			name: "container not run is never excused",
			tap: `TAP version 13
  ---
  {
    "error": "exit status 1",
    "stdout": ""
  }
  ...
not ok 1 - check masked paths
1..1
`,
			kind: kindNormal, later: capabilities,
			want: "fail 0 1 0 1 0 no", wantBad: 1,
		},
		{
			name: "refused config passes",
			tap:  "",
			kind: kindExpectError,
			want: "pass 0 0 0 - 0 no",
		},
		{
			name: "accepted config fails",
			tap:  "TAP version 13\nok 1 - a\n1..1\n",
			kind: kindExpectError,
			exit: 1,
			want: "fail 1 0 0 - 1 no",
		},
		{
			name: "hook test without diagnostic passes",
			tap:  "TAP version 13\n1..0\n",
			kind: kindYAMLOnly,
			want: "pass 0 0 0 0 0 no",
		},
		{
			name: "hook test with diagnostic fails",
			tap:  "TAP version 13\n  ---\n  {\n    \"error\": \"Hooks MUST be called in the listed order\"\n  }\n  ...\n1..0\n",
			kind: kindYAMLOnly,
			want: "fail 0 0 0 0 0 no", wantBad: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := parse(tc.tap)
			got := judge(doc, tc.kind, tc.exit, tc.later).String()
			if got != tc.want {
				t.Errorf("judge = %q, want %q", got, tc.want)
			}
			if bad := unexcused(doc, tc.later); len(bad) != tc.wantBad {
				t.Errorf("unexcused = %d results, want %d", len(bad), tc.wantBad)
			}
		})
	}
}

func TestReportShowsInnerFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.tap")
	if err := os.WriteFile(path, []byte(insideWith(`not ok 3 - has expected hostname\n  ---\n  {\n    \"actual\": \"\",\n    \"expected\": \"x\"\n  }\n  ...\n`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run([]string{"-report", "-later", `capability CAP_[A-Z_]+ `, path}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	got := out.String()
	for _, want := range []string{
		`not ok 1 - check hostname "x"`,
		"inside the container: 1 ok, 2 not ok, plan 3",
		"not ok 3 - has expected hostname",
		`{"actual":"","expected":"x"}`,
		"(1 more not ok excused as later-issue)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "not ok 2 - unexpected bounding capability") {
		t.Errorf("report lists an excused failure:\n%s", got)
	}
}

func TestListNamesInnerFailures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.tap")
	tap := insideWith(`not ok 3 - has expected hostname\n`, 1) + "not ok 2 - set uts namespace by path\n1..1\n"
	if err := os.WriteFile(path, []byte(tap), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run([]string{"-list", "-later", `capability CAP_[A-Z_]+ `, path}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	want := "check hostname \"x\" / has expected hostname\nset uts namespace by path\n"
	if out.String() != want {
		t.Errorf("list = %q, want %q", out.String(), want)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	var out strings.Builder
	if err := run([]string{"-kind", "odd", "x"}, &out); err == nil {
		t.Error("run accepted an unknown kind")
	}
	if err := run([]string{"-later", "(", "x"}, &out); err == nil {
		t.Error("run accepted a bad pattern")
	}
	if err := run([]string{filepath.Join(t.TempDir(), "missing")}, &out); err == nil {
		t.Error("run accepted a missing file")
	}
}
