package image

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ConfigChanges are what commit and import change in an image's config.
// Zero fields change nothing; a non-nil empty Cmd or Entrypoint clears it.
type ConfigChanges struct {
	Cmd          []string
	Entrypoint   []string
	Env          []string          // KEY=VALUE; replaces the same KEY
	WorkingDir   string            // a relative one is joined to the current
	User         string            //
	Labels       map[string]string // added or replaced
	ExposedPorts []string          // "80/tcp", "53/udp"
	Volumes      []string
	OnBuild      []string
	StopSignal   string
	// Author, Comment and CreatedBy go into the new history entry (and
	// Author into the config).
	Author    string
	Comment   string
	CreatedBy string
}

// ParseChanges parses Dockerfile-style instructions as docker commit and
// import take them with --change: CMD, ENTRYPOINT (JSON or shell form),
// ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
func ParseChanges(lines []string) (ConfigChanges, error) {
	var c ConfigChanges
	for _, line := range lines {
		if err := c.parse(line); err != nil {
			return ConfigChanges{}, fmt.Errorf("%w: change %q: %v", ErrInvalid, line, err)
		}
	}
	return c, nil
}

func (c *ConfigChanges) parse(line string) error {
	line = strings.TrimSpace(line)
	instr, rest := line, ""
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		instr, rest = line[:i], line[i+1:]
	}
	rest = strings.TrimSpace(rest)
	if instr == "" {
		return fmt.Errorf("empty instruction")
	}
	needArg := func() error {
		if rest == "" {
			return fmt.Errorf("%s needs an argument", strings.ToUpper(instr))
		}
		return nil
	}
	switch strings.ToUpper(instr) {
	case "CMD":
		c.Cmd = commandForm(rest)
	case "ENTRYPOINT":
		c.Entrypoint = commandForm(rest)
	case "ENV":
		if err := needArg(); err != nil {
			return err
		}
		kv, err := keyValues(rest, true)
		if err != nil {
			return err
		}
		for _, p := range kv {
			c.Env = append(c.Env, p[0]+"="+p[1])
		}
	case "LABEL":
		if err := needArg(); err != nil {
			return err
		}
		kv, err := keyValues(rest, false)
		if err != nil {
			return err
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for _, p := range kv {
			c.Labels[p[0]] = p[1]
		}
	case "EXPOSE":
		if err := needArg(); err != nil {
			return err
		}
		words, err := splitWords(rest)
		if err != nil {
			return err
		}
		for _, w := range words {
			ports, err := parsePorts(w)
			if err != nil {
				return err
			}
			c.ExposedPorts = append(c.ExposedPorts, ports...)
		}
	case "VOLUME":
		if err := needArg(); err != nil {
			return err
		}
		var vols []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				return fmt.Errorf("VOLUME: bad JSON array: %v", err)
			}
		} else {
			var err error
			if vols, err = splitWords(rest); err != nil {
				return err
			}
		}
		for _, v := range vols {
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("VOLUME: empty path")
			}
			c.Volumes = append(c.Volumes, v)
		}
	case "WORKDIR":
		if err := needArg(); err != nil {
			return err
		}
		wd := unquote(rest)
		if !path.IsAbs(wd) && c.WorkingDir != "" {
			wd = path.Join(c.WorkingDir, wd)
		}
		c.WorkingDir = wd
	case "USER":
		if err := needArg(); err != nil {
			return err
		}
		c.User = unquote(rest)
	case "ONBUILD":
		if err := needArg(); err != nil {
			return err
		}
		c.OnBuild = append(c.OnBuild, rest)
	case "STOPSIGNAL":
		if err := needArg(); err != nil {
			return err
		}
		c.StopSignal = unquote(rest)
	default:
		return fmt.Errorf("unknown instruction %s (want CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR)", strings.ToUpper(instr))
	}
	return nil
}

// commandForm is the exec form of a JSON array, or the shell form.
func commandForm(s string) []string {
	if strings.HasPrefix(s, "[") {
		var args []string
		if json.Unmarshal([]byte(s), &args) == nil {
			return args
		}
	}
	if s == "" {
		return []string{}
	}
	return []string{"/bin/sh", "-c", s}
}

func unquote(s string) string {
	if w, err := splitWords(s); err == nil && len(w) == 1 {
		return w[0]
	}
	return s
}

// splitWords splits s at blanks, honouring "double" (with \ escapes) and
// 'single' quotes and \ escapes.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case ch == '"':
			in = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" quote")
			}
		case ch == '\'':
			in = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// keyValues parses "k=v k2='v 2'", or (for ENV) the legacy "K some value".
func keyValues(s string, legacy bool) ([][2]string, error) {
	words, err := splitWords(s)
	if err != nil {
		return nil, err
	}
	if len(words) > 0 && !strings.Contains(words[0], "=") {
		if !legacy {
			return nil, fmt.Errorf("%q is not key=value", words[0])
		}
		if len(words) < 2 {
			return nil, fmt.Errorf("%s has no value", words[0])
		}
		first, restv, _ := strings.Cut(strings.TrimSpace(s), " ")
		return [][2]string{{first, unquote(strings.TrimSpace(restv))}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// parsePorts expands "80", "80/udp" and "8000-8002/tcp".
func parsePorts(s string) ([]string, error) {
	p, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("EXPOSE %s: protocol %q is not tcp, udp or sctp", s, proto)
	}
	lo, hi, isRange := strings.Cut(p, "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || a == 0 || b < a {
		return nil, fmt.Errorf("EXPOSE %s: not a port or port range", s)
	}
	var out []string
	for n := a; n <= b; n++ {
		out = append(out, fmt.Sprintf("%d/%s", n, proto))
	}
	return out, nil
}

// Apply makes the changes to cfg's container config.
func (c ConfigChanges) Apply(cfg *v1.Config) {
	if c.Entrypoint != nil {
		cfg.Entrypoint = c.Entrypoint
		if c.Cmd == nil {
			cfg.Cmd = nil // as a Dockerfile's ENTRYPOINT resets CMD
		}
	}
	if c.Cmd != nil {
		cfg.Cmd = c.Cmd
	}
	for _, e := range c.Env {
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, old := range cfg.Env {
			if ok, _, _ := strings.Cut(old, "="); ok == k {
				cfg.Env[i] = e
				replaced = true
			}
		}
		if !replaced {
			cfg.Env = append(cfg.Env, e)
		}
	}
	if c.WorkingDir != "" {
		wd := c.WorkingDir
		if !path.IsAbs(wd) {
			wd = path.Join("/", cfg.WorkingDir, wd)
		}
		cfg.WorkingDir = wd
	}
	if c.User != "" {
		cfg.User = c.User
	}
	if len(c.Labels) > 0 && cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	for k, v := range c.Labels {
		cfg.Labels[k] = v
	}
	if len(c.ExposedPorts) > 0 && cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range c.ExposedPorts {
		cfg.ExposedPorts[p] = struct{}{}
	}
	if len(c.Volumes) > 0 && cfg.Volumes == nil {
		cfg.Volumes = map[string]struct{}{}
	}
	for _, v := range c.Volumes {
		cfg.Volumes[v] = struct{}{}
	}
	cfg.OnBuild = append(cfg.OnBuild, c.OnBuild...)
	if c.StopSignal != "" {
		cfg.StopSignal = c.StopSignal
	}
}
