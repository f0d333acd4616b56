package main

import (
	"bufio"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// result is one "ok" or "not ok" line of a TAP stream with what explains it.
type result struct {
	ok   bool
	num  int
	desc string
	skip bool
	// diagnostics are the YAML blocks (JSON objects in runtime-tools) and
	// "# " comment lines that belong to the result.
	diagnostics []string
	// inner is the TAP the runtimetest program printed inside the container,
	// for results of util.RuntimeInsideValidate; innerErr is the error that
	// helper reported beside it (the container could not be run).
	inner    *document
	innerErr string
}

// document is a parsed TAP output, possibly several streams one after the
// other (some validation programs print two).
type document struct {
	results []*result
	plans   []int
	// orphans are diagnostics printed before any result: the only report of
	// the hook tests, which print an empty plan and a YAML error on failure.
	orphans []string
}

var resultLine = regexp.MustCompile(`^(not )?ok\b *([0-9]+)? *(?:- )?(.*)$`)
var planLine = regexp.MustCompile(`^1\.\.([0-9]+)`)
var skipDirective = regexp.MustCompile(`(?i)#\s*skip\b`)

// parse reads TAP as runtime-tools' tap-go writes it: YAML blocks are JSON
// objects indented by two spaces between "  ---" and "  ...". A block holding
// "stdout" is the diagnostic util.RuntimeInsideValidate writes before the
// result it explains; every other block follows its result.
func parse(text string) *document {
	doc := &document{}
	var pendingInner *document
	var pendingErr string
	var last *result
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var block []string
	inBlock := false
	for sc.Scan() {
		line := sc.Text()
		if inBlock {
			if strings.TrimSpace(line) == "..." {
				inBlock = false
				raw := strings.TrimSpace(strings.Join(block, "\n"))
				var obj map[string]any
				if err := json.Unmarshal([]byte(raw), &obj); err == nil {
					if out, ok := obj["stdout"].(string); ok {
						pendingInner = parse(out)
						pendingErr, _ = obj["error"].(string)
						continue
					}
					if b, err := json.Marshal(obj); err == nil {
						raw = string(b)
					}
				}
				if last != nil {
					last.diagnostics = append(last.diagnostics, raw)
				} else {
					doc.orphans = append(doc.orphans, raw)
				}
				continue
			}
			block = append(block, line)
			continue
		}
		switch {
		case strings.TrimSpace(line) == "---" && strings.HasPrefix(line, " "):
			inBlock = true
			block = block[:0]
		case planLine.MatchString(line):
			n, _ := strconv.Atoi(planLine.FindStringSubmatch(line)[1])
			doc.plans = append(doc.plans, n)
			last = nil
		case resultLine.MatchString(line):
			m := resultLine.FindStringSubmatch(line)
			n, _ := strconv.Atoi(m[2])
			r := &result{ok: m[1] == "", num: n, desc: m[3], skip: m[1] == "" && skipDirective.MatchString(line)}
			r.inner, r.innerErr = pendingInner, pendingErr
			pendingInner, pendingErr = nil, ""
			doc.results = append(doc.results, r)
			last = r
		case strings.HasPrefix(line, "#") && last != nil:
			last.diagnostics = append(last.diagnostics, line)
		}
	}
	return doc
}

// counts returns the number of ok, not ok and skipped results and the sum of
// the plans (-1 when there is no plan).
func (d *document) counts() (ok, notOK, skip, plan int) {
	for _, r := range d.results {
		switch {
		case !r.ok:
			notOK++
		case r.skip:
			ok++
			skip++
		default:
			ok++
		}
	}
	if len(d.plans) == 0 {
		return ok, notOK, skip, -1
	}
	for _, p := range d.plans {
		plan += p
	}
	return ok, notOK, skip, plan
}

// complete reports whether the document has a plan and as many results.
func (d *document) complete() bool {
	ok, notOK, _, plan := d.counts()
	return plan >= 0 && ok+notOK == plan
}
