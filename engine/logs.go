package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
)

// LogsOptions are the options of Logs.
type LogsOptions struct {
	Follow     bool
	Tail       int // lines from the end; < 0 for all
	Since      time.Time
	Until      time.Time
	Timestamps bool
	Stdout     io.Writer // nil: leave out stdout
	Stderr     io.Writer // nil: leave out stderr
}

type logEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Logs writes the container's log (Docker's json-file format, written by
// its supervisor) to the writers; with Follow it keeps following until the
// container stops or ctx ends.
func (e *Engine) Logs(ctx context.Context, ref string, o LogsOptions) error {
	c, err := e.Get(ref)
	if err != nil {
		return err
	}
	if c.HostConfig.LogConfig.Type == "none" {
		return fmt.Errorf("container %s: configured logging driver \"none\" does not support reading", c.Name)
	}
	base := e.logPath(c.ID)
	_, maxFiles, _ := logLimits(c.HostConfig)
	var lines [][]byte
	for i := maxFiles - 1; i >= 1; i-- {
		if data, err := os.ReadFile(base + "." + strconv.Itoa(i)); err == nil {
			lines = append(lines, splitLines(data)...)
		}
	}
	f, err := os.Open(base)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var offset int64
	if f != nil {
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		// Only whole lines; a partial last line is read when complete.
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			lines = append(lines, splitLines(data[:i+1])...)
			offset = int64(i + 1)
		}
	}
	if o.Tail >= 0 && len(lines) > o.Tail {
		lines = lines[len(lines)-o.Tail:]
	}
	for _, l := range lines {
		if err := o.write(l); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	var r *bufio.Reader
	if f != nil {
		f.Seek(offset, io.SeekStart)
		r = bufio.NewReader(f)
	}
	var partial []byte
	for {
		if r != nil {
			for {
				line, err := r.ReadBytes('\n')
				if err != nil {
					partial = append(partial, line...)
					break
				}
				line = append(partial, line...)
				partial = nil
				if err := o.write(line); err != nil {
					return err
				}
			}
		}
		// Rotated, or created since?
		if cur, err := os.Stat(base); err == nil {
			var fi os.FileInfo
			if f != nil {
				fi, _ = f.Stat()
			}
			if fi == nil || !os.SameFile(cur, fi) {
				if f != nil {
					f.Close()
				}
				if f, err = os.Open(base); err == nil {
					r = bufio.NewReader(f)
					partial = nil
					continue
				}
			}
		}
		cur, err := e.getRaw(c.ID)
		if err != nil || (!cur.State.Running() && cur.State.Status != "starting") {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func splitLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		out = append(out, data[:i+1])
		data = data[i+1:]
	}
	return out
}

func (o *LogsOptions) write(line []byte) error {
	var ent logEntry
	if err := json.Unmarshal(line, &ent); err != nil {
		return nil // a torn line after a crash: skip it
	}
	if !o.Since.IsZero() && ent.Time.Before(o.Since) {
		return nil
	}
	if !o.Until.IsZero() && ent.Time.After(o.Until) {
		return nil
	}
	w := o.Stdout
	if ent.Stream == "stderr" {
		w = o.Stderr
	}
	if w == nil {
		return nil
	}
	if o.Timestamps {
		if _, err := io.WriteString(w, ent.Time.UTC().Format("2006-01-02T15:04:05.000000000Z")+" "); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, ent.Log)
	return err
}

// logLimits reads --log-opt max-size and max-file as Docker's json-file
// driver does (no rotation by default; max-file only with max-size).
func logLimits(hc *container.HostConfig) (maxSize int64, maxFiles int, err error) {
	maxFiles = 1
	opts := hc.LogConfig.Config
	if v, ok := opts["max-size"]; ok && v != "-1" {
		if maxSize, err = units.RAMInBytes(v); err != nil || maxSize <= 0 {
			return 0, 0, fmt.Errorf("invalid --log-opt max-size=%s: want a size such as 10m", v)
		}
	}
	if v, ok := opts["max-file"]; ok {
		if maxFiles, err = strconv.Atoi(v); err != nil || maxFiles < 1 {
			return 0, 0, fmt.Errorf("invalid --log-opt max-file=%s: want a number of at least 1", v)
		}
		if maxFiles > 1 && maxSize == 0 {
			return 0, 0, fmt.Errorf("--log-opt max-file=%s needs max-size", v)
		}
	}
	return maxSize, maxFiles, nil
}
