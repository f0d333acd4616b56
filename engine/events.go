package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"
)

// Events are appended, one JSON line each (Docker's event message shape),
// to root/events.log by whichever berth process caused them; `berth
// events` reads and follows that file. It is rotated once past maxEvents
// bytes, keeping one old file.
const maxEvents = 8 << 20

func (e *Engine) eventsPath() string { return filepath.Join(e.cfg.Root, "events.log") }

// event records an event about a container (or, with c nil, attrs name
// the object).
func (e *Engine) event(typ, action string, c *Container, attrs map[string]string) {
	a := map[string]string{}
	id := ""
	if c != nil {
		id = c.ID
		a["name"] = c.Name
		a["image"] = c.ImageRef
		for k, v := range c.Config.Labels {
			a[k] = v
		}
	}
	for k, v := range attrs {
		a[k] = v
	}
	if v, ok := a["id"]; ok && id == "" {
		id = v
		delete(a, "id")
	}
	now := time.Now()
	e.Emit(events.Message{Type: events.Type(typ), Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: a},
		Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()})
}

// Emit appends an event message.
func (e *Engine) Emit(m events.Message) {
	data, err := json.Marshal(m)
	if err != nil {
		return
	}
	data = append(data, '\n')
	p := e.eventsPath()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	unix.Flock(int(f.Fd()), unix.LOCK_EX)
	if fi, err := f.Stat(); err == nil && fi.Size() > maxEvents {
		if cur, err := os.Stat(p); err == nil && os.SameFile(cur, fi) {
			os.Rename(p, p+".1")
		}
	}
	f.Write(data)
}

// Events calls fn for each event from since (zero: only new ones) until
// until (zero: follow until ctx ends).
func (e *Engine) Events(ctx context.Context, since, until time.Time, fn func(events.Message) error) error {
	p := e.eventsPath()
	follow := until.IsZero()
	var f *os.File
	var err error
	if !since.IsZero() {
		if err := e.readEvents(p+".1", since, until, fn); err != nil {
			return err
		}
	}
	for {
		f, err = os.Open(p)
		if err == nil || !os.IsNotExist(err) {
			break
		}
		if !follow {
			return nil
		}
		os.MkdirAll(e.cfg.Root, 0o700)
		if f, err = os.OpenFile(p, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
			break
		}
		return err
	}
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	if since.IsZero() {
		f.Seek(0, io.SeekEnd)
	}
	r := bufio.NewReader(f)
	var partial []byte
	for {
		line, err := r.ReadBytes('\n')
		if err == nil {
			line = append(partial, line...)
			partial = nil
			var m events.Message
			if json.Unmarshal(line, &m) == nil {
				t := time.Unix(0, m.TimeNano)
				if !until.IsZero() && t.After(until) {
					return nil
				}
				if since.IsZero() || !t.Before(since) {
					if err := fn(m); err != nil {
						return err
					}
				}
			}
			continue
		}
		partial = append(partial, line...)
		if !follow && until.Before(time.Now()) {
			return nil
		}
		// At the end: wait for more, noticing rotation.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if cur, err := os.Stat(p); err == nil {
			if fi, err := f.Stat(); err == nil && !os.SameFile(cur, fi) {
				f.Close()
				if f, err = os.Open(p); err != nil {
					return err
				}
				r = bufio.NewReader(f)
			}
		}
		if !until.IsZero() && time.Now().After(until) {
			return nil
		}
	}
}

func (e *Engine) readEvents(p string, since, until time.Time, fn func(events.Message) error) error {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m events.Message
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		t := time.Unix(0, m.TimeNano)
		if t.Before(since) || (!until.IsZero() && t.After(until)) {
			continue
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}
