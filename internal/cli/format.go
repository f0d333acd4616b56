package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
)

var tmplFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":     strings.Join,
	"split":    strings.Split,
	"upper":    strings.ToUpper,
	"lower":    strings.ToLower,
	"title":    func(s string) string { return strings.ToUpper(s[:min(1, len(s))]) + s[min(1, len(s)):] },
	"truncate": func(s string, n int) string { return s[:min(n, len(s))] },
	"pad":      func(s string, l, r int) string { return strings.Repeat(" ", l) + s + strings.Repeat(" ", r) },
	"println":  fmt.Sprintln,
}

func parseTemplate(format string) (*template.Template, error) {
	t, err := template.New("format").Funcs(tmplFuncs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("invalid --format template: %w", err)
	}
	return t, nil
}

var fieldRe = regexp.MustCompile(`\{\{\s*\.(\w+)[^}]*\}\}`)

// render writes rows as --format asks: "" uses def (the default table),
// "json" one JSON object per line, "table TEMPLATE" a table whose headers
// come from the template's fields, anything else a Go template per row.
// rows are the template's data; headers maps field names to column titles.
func render(w io.Writer, format string, rows []any, headers map[string]string, def string) error {
	if format == "" {
		format = def
	}
	if format == "json" {
		for _, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", b)
		}
		return nil
	}
	table := strings.HasPrefix(format, "table")
	if table {
		format = strings.TrimSpace(strings.TrimPrefix(format, "table"))
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	t, err := parseTemplate(format)
	if err != nil {
		return err
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
		out = tw
		head := fieldRe.ReplaceAllStringFunc(format, func(m string) string {
			f := fieldRe.FindStringSubmatch(m)[1]
			if h, ok := headers[f]; ok {
				return h
			}
			return strings.ToUpper(f)
		})
		fmt.Fprintln(out, head)
	}
	for _, r := range rows {
		var b bytes.Buffer
		if err := t.Execute(&b, r); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		s := b.String()
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		io.WriteString(out, s)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// ago is Docker's "About a minute ago" style.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

func humanSize(n int64) string { return units.HumanSizeWithPrecision(float64(n), 3) }

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
