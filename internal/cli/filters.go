package cli

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"

	"github.com/berth-project/berth/engine"
)

func unitsHuman(d time.Duration) string { return units.HumanDuration(d) }

// filters are --filter key=value pairs; several values of one key match
// any, different keys must all match (Docker's rules).
type filters map[string][]string

// parseFilters parses --filter's list; a bad one is a usage error (125).
func parseFilters(list []string) (filters, error) {
	f := filters{}
	for _, s := range list {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, exitCode(125, fmt.Errorf("bad format of filter %q (expected name=value)", s))
		}
		f[strings.ToLower(k)] = append(f[strings.ToLower(k)], v)
	}
	return f, nil
}

func (f filters) has(k string) bool { return len(f[k]) > 0 }

func (f filters) any(k string, match func(v string) bool) bool {
	vals := f[k]
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if match(v) {
			return true
		}
	}
	return false
}

// labelMatch matches label filters ("k" or "k=v") against labels.
func labelMatch(f filters, labels map[string]string) bool {
	for _, v := range f["label"] {
		k, want, hasV := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != want) {
			return false
		}
	}
	return true
}

var containerFilterKeys = map[string]bool{"id": true, "name": true, "label": true, "exited": true, "status": true, "ancestor": true,
	"before": true, "since": true, "volume": true, "health": true, "network": true}

func (f filters) matchContainer(e *engine.Engine, c *engine.Container) (bool, error) {
	for k := range f {
		if !containerFilterKeys[k] {
			return false, fmt.Errorf("invalid filter %q", k)
		}
	}
	if !f.any("id", func(v string) bool { return strings.HasPrefix(c.ID, v) }) {
		return false, nil
	}
	var err error
	if !f.any("name", func(v string) bool {
		re, e := regexp.Compile(v)
		if e != nil {
			err = fmt.Errorf("invalid name filter %q: %w", v, e)
			return false
		}
		return re.MatchString(c.Name) || re.MatchString("/"+c.Name)
	}) {
		return false, err
	}
	if !labelMatch(f, c.Config.Labels) {
		return false, nil
	}
	for _, v := range f["status"] {
		switch v {
		case "created", "restarting", "running", "removing", "paused", "exited", "dead":
		default:
			return false, fmt.Errorf("invalid filter 'status=%s'", v)
		}
	}
	if !f.any("status", func(v string) bool { return v == publicState(c) }) {
		return false, nil
	}
	if !f.any("exited", func(v string) bool {
		n, e := strconv.Atoi(v)
		return e == nil && c.State.Status == "exited" && c.State.ExitCode == n
	}) {
		return false, nil
	}
	if !f.any("ancestor", func(v string) bool {
		return c.ImageRef == v || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(v, "sha256:")) || path.Base(c.ImageRef) == v
	}) {
		return false, nil
	}
	if !f.any("volume", func(v string) bool {
		for _, m := range c.Mounts {
			if m.Name == v || m.Destination == v || m.Source == v {
				return true
			}
		}
		return false
	}) {
		return false, nil
	}
	if !f.any("health", func(v string) bool {
		if c.State.Health == nil {
			return v == "none"
		}
		return string(c.State.Health.Status) == v
	}) {
		return false, nil
	}
	if !f.any("network", func(v string) bool { return networkName(c) == v }) {
		return false, nil
	}
	for _, k := range []string{"before", "since"} {
		for _, v := range f[k] {
			other, err := e.Get(v)
			if err != nil {
				return false, err
			}
			if k == "before" && !c.Created.Before(other.Created) {
				return false, nil
			}
			if k == "since" && !c.Created.After(other.Created) {
				return false, nil
			}
		}
	}
	return true, nil
}
