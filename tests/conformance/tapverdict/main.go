// Command tapverdict judges the output of one opencontainers/runtime-tools
// validation program for tests/conformance/run.sh: whether it passed, how many
// subtests passed, failed and were skipped, whether every failure is one the
// later-issue patterns excuse, and (with -report) the failures with the
// diagnostics that explain them, including those of the runtimetest program
// that ran inside the container, or (with -list) just their descriptions.
//
// It prints one line:
//
//	<verdict> <ok> <not-ok> <skipped> <plan|-> <exit> <excused:yes|no>
//
// where verdict is pass, fail, skip (every subtest skipped) or timeout.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// kind says how a validation program reports success.
type kind string

const (
	// kindNormal programs print TAP with a plan and as many results.
	kindNormal kind = "normal"
	// kindExpectError programs print nothing and exit 0 when the runtime
	// refused the config, as it must.
	kindExpectError kind = "expect-error"
	// kindYAMLOnly programs print an empty plan and, only on failure, a YAML
	// diagnostic (the hook tests).
	kindYAMLOnly kind = "yaml-only"
)

type patterns []*regexp.Regexp

func (p *patterns) String() string { return fmt.Sprint(*p) }

func (p *patterns) Set(s string) error {
	re, err := regexp.Compile(s)
	if err != nil {
		return fmt.Errorf("later-issue pattern %q: %w", s, err)
	}
	*p = append(*p, re)
	return nil
}

func (p patterns) match(desc string) bool {
	for _, re := range p {
		if re.MatchString(desc) {
			return true
		}
	}
	return false
}

// verdict is the judgement of one run of one program.
type verdict struct {
	name                  string
	ok, notOK, skip, plan int
	exit                  int
	excused               bool
}

func (v verdict) String() string {
	plan := "-"
	if v.plan >= 0 {
		plan = fmt.Sprint(v.plan)
	}
	excused := "no"
	if v.excused {
		excused = "yes"
	}
	return fmt.Sprintf("%s %d %d %d %s %d %s", v.name, v.ok, v.notOK, v.skip, plan, v.exit, excused)
}

// judge decides the verdict of a program that exited with exit and printed doc.
func judge(doc *document, k kind, exit int, later patterns) verdict {
	v := verdict{exit: exit}
	v.ok, v.notOK, v.skip, v.plan = doc.counts()
	switch {
	case exit == 124 || exit == 137:
		v.name = "timeout"
	case k == kindExpectError:
		v.name = "fail"
		if exit == 0 && v.notOK == 0 {
			v.name = "pass"
		}
		v.plan = -1
	case k == kindYAMLOnly:
		v.name = "fail"
		if exit == 0 && v.notOK == 0 && v.plan >= 0 && len(doc.orphans) == 0 && len(doc.diagnosed()) == 0 {
			v.name = "pass"
		}
	case exit != 0 || v.notOK != 0 || v.plan <= 0 || !doc.complete():
		v.name = "fail"
	case v.skip == v.ok:
		v.name = "skip"
	default:
		v.name = "pass"
	}
	v.excused = v.name == "fail" && k == kindNormal && exit == 0 && doc.complete() && v.notOK > 0 &&
		len(unexcused(doc, later)) == 0
	return v
}

// diagnosed returns the results carrying a YAML diagnostic.
func (d *document) diagnosed() []*result {
	var out []*result
	for _, r := range d.results {
		if len(r.diagnostics) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// unexcused returns the failed results of doc that the later-issue patterns
// do not excuse. A failed result that stands for a run inside the container
// is excused when that run completed and each of its failures is excused.
func unexcused(doc *document, later patterns) []*result {
	var out []*result
	for _, r := range doc.results {
		if r.ok || later.match(r.desc) {
			continue
		}
		if r.inner != nil && r.innerErr == "" && r.inner.complete() {
			_, innerNotOK, _, _ := r.inner.counts()
			if innerNotOK > 0 && len(unexcused(r.inner, later)) == 0 {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// report writes the failures of doc, with their diagnostics, indented by
// indent; failures the later-issue patterns excuse are only counted.
func report(w io.Writer, doc *document, later patterns, indent string) {
	excused := 0
	bad := unexcused(doc, later)
	for _, r := range doc.results {
		if !r.ok && !contains(bad, r) {
			excused++
		}
	}
	for _, d := range doc.orphans {
		fmt.Fprintf(w, "%s%s\n", indent, clip(d, 1500))
	}
	for _, r := range bad {
		fmt.Fprintf(w, "%snot ok %d - %s\n", indent, r.num, r.desc)
		for _, d := range r.diagnostics {
			fmt.Fprintf(w, "%s    %s\n", indent, clip(d, 1500))
		}
		if r.innerErr != "" {
			fmt.Fprintf(w, "%s    error: %s\n", indent, clip(r.innerErr, 1500))
		}
		if r.inner != nil {
			ok, notOK, _, plan := r.inner.counts()
			fmt.Fprintf(w, "%s    inside the container: %d ok, %d not ok, plan %d\n", indent, ok, notOK, plan)
			report(w, r.inner, later, indent+"      ")
		}
	}
	if excused > 0 {
		fmt.Fprintf(w, "%s(%d more not ok excused as later-issue)\n", indent, excused)
	}
}

// list writes the description of each failure the later-issue patterns do
// not excuse, one a line; a failure inside the container is written as
// "outer description / inner description".
func list(w io.Writer, doc *document, later patterns, prefix string) {
	for _, d := range doc.orphans {
		fmt.Fprintf(w, "%s%s\n", prefix, clip(d, 200))
	}
	for _, r := range unexcused(doc, later) {
		if r.inner != nil && r.innerErr == "" && r.inner.complete() {
			if _, notOK, _, _ := r.inner.counts(); notOK > 0 {
				list(w, r.inner, later, prefix+r.desc+" / ")
				continue
			}
		}
		fmt.Fprintf(w, "%s%s\n", prefix, r.desc)
	}
}

func contains(rs []*result, r *result) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", "\\n")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("tapverdict", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	k := fs.String("kind", string(kindNormal), "how the program reports success: normal, expect-error or yaml-only")
	exit := fs.Int("exit", 0, "exit status of the program (124 or 137: timed out)")
	rep := fs.Bool("report", false, "write the failures and their diagnostics instead of the verdict")
	lst := fs.Bool("list", false, "write the descriptions of the failures instead of the verdict")
	var later patterns
	fs.Var(&later, "later", "regular expression of subtest descriptions whose failure is excused (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: tapverdict [flags] TAP-FILE")
	}
	switch kind(*k) {
	case kindNormal, kindExpectError, kindYAMLOnly:
	default:
		return fmt.Errorf("unknown kind %q", *k)
	}
	text, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read tap output: %w", err)
	}
	doc := parse(string(text))
	if *rep {
		report(stdout, doc, later, "  ")
		return nil
	}
	if *lst {
		list(stdout, doc, later, "")
		return nil
	}
	_, err = fmt.Fprintln(stdout, judge(doc, kind(*k), *exit, later))
	return err
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tapverdict:", err)
		os.Exit(2)
	}
}
