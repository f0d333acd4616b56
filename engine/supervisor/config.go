package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/atomicfile"
)

// Restart policies (Docker's names).
const (
	RestartNo            = "no"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
	RestartOnFailure     = "on-failure"
)

// Config is what a supervisor needs to know about its container. Write
// stores it as D/supervisor.conf, one "key=value" line each, values with
// '\' and newlines escaped as "\\", "\n" (and "\r"):
//
//	id=<ID>
//	log_path=<LogPath>                 empty: no log
//	log_max_size=<LogMaxSize>          bytes, 0: never rotate
//	log_max_file=<LogMaxFile>          files kept, current one included
//	tty=true|false
//	open_stdin=true|false
//	stdin_once=true|false
//	wait_attach=true|false
//	client_start=true|false            the first start is the engine's (SpawnStarter)
//	restart=no|always|unless-stopped|on-failure
//	restart_max_retries=<N>            on-failure only, 0: unlimited
//	health_interval_ms=<ms>            0: no health checks
//	health_timeout_ms=<ms>             0: no timeout
//	health_start_period_ms=<ms>
//	health_retries=<N>                 failures in a row that make it unhealthy (0 counts as 1)
//	start=<arg>                        repeated: one line per argv element, in order
//	cleanup=<arg>                      repeated
//	health=<arg>                       repeated
//
// argv[0] of each callback must be an absolute path (it is executed
// directly, without a PATH search).
type Config struct {
	ID         string
	LogPath    string // Docker json-file log; empty for none
	LogMaxSize int64  // rotate when the file holds at least this many bytes; 0 never
	LogMaxFile int    // files kept including the current one; 0 means 1

	Tty        bool // the runtime sends a pty master to D/console.sock
	OpenStdin  bool // keep the container's stdin open for attach clients
	StdinOnce  bool // close the container's stdin when the last attached stdin closes
	WaitAttach bool // start the container only once the first attach client connected
	// ClientStart: the first start is not the start callback's but the
	// engine's, through the Starter SpawnStarter returns (restarts use
	// the callback). Set by SpawnStarter.
	ClientStart bool

	Restart           string // RestartNo (or ""), RestartAlways, RestartUnlessStopped, RestartOnFailure
	RestartMaxRetries int    // for RestartOnFailure; 0 unlimited

	HealthInterval    time.Duration // 0: no health checks
	HealthTimeout     time.Duration // 0: no timeout
	HealthStartPeriod time.Duration
	HealthRetries     int

	// Start creates and starts the container: it gets the container's
	// stdio as descriptors 0-2 and D/start.err as descriptor 3, writes the
	// init's pid to D/pid and exits 0.
	Start []string
	// Cleanup runs after every exit with the exit code appended.
	Cleanup []string
	// Health runs one health check; exit 0 means healthy.
	Health []string
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	if len(c.Start) == 0 {
		return errors.New("supervisor config: no start command")
	}
	for _, cb := range []struct {
		name string
		argv []string
	}{{"start", c.Start}, {"cleanup", c.Cleanup}, {"health", c.Health}} {
		if len(cb.argv) > 0 && !filepath.IsAbs(cb.argv[0]) {
			return fmt.Errorf("supervisor config: %s command %q is not an absolute path", cb.name, cb.argv[0])
		}
		if len(cb.argv) > 256 {
			return fmt.Errorf("supervisor config: %s command has more than 256 arguments", cb.name)
		}
		for _, a := range cb.argv {
			if strings.IndexByte(a, 0) >= 0 {
				return fmt.Errorf("supervisor config: %s argument %q contains a NUL byte", cb.name, a)
			}
		}
	}
	switch c.Restart {
	case "", RestartNo, RestartAlways, RestartUnlessStopped, RestartOnFailure:
	default:
		return fmt.Errorf("supervisor config: unknown restart policy %q", c.Restart)
	}
	if c.RestartMaxRetries < 0 || c.LogMaxSize < 0 || c.LogMaxFile < 0 || c.HealthRetries < 0 {
		return errors.New("supervisor config: negative count or size")
	}
	if c.HealthInterval < 0 || c.HealthTimeout < 0 || c.HealthStartPeriod < 0 {
		return errors.New("supervisor config: negative health duration")
	}
	if c.HealthInterval > 0 && len(c.Health) == 0 {
		return errors.New("supervisor config: health interval set but no health command")
	}
	if strings.IndexByte(c.ID, 0) >= 0 || strings.IndexByte(c.LogPath, 0) >= 0 {
		return errors.New("supervisor config: NUL byte in id or log path")
	}
	return nil
}

// Write validates c and stores it as dir/supervisor.conf (atomically).
func (c Config) Write(dir string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var b bytes.Buffer
	kv := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, escapeValue(v)) }
	kv("id", c.ID)
	kv("log_path", c.LogPath)
	kv("log_max_size", strconv.FormatInt(c.LogMaxSize, 10))
	kv("log_max_file", strconv.Itoa(max(c.LogMaxFile, 1)))
	kv("tty", strconv.FormatBool(c.Tty))
	kv("open_stdin", strconv.FormatBool(c.OpenStdin))
	kv("stdin_once", strconv.FormatBool(c.StdinOnce))
	kv("wait_attach", strconv.FormatBool(c.WaitAttach))
	kv("client_start", strconv.FormatBool(c.ClientStart))
	restart := c.Restart
	if restart == "" {
		restart = RestartNo
	}
	kv("restart", restart)
	kv("restart_max_retries", strconv.Itoa(c.RestartMaxRetries))
	kv("health_interval_ms", strconv.FormatInt(c.HealthInterval.Milliseconds(), 10))
	kv("health_timeout_ms", strconv.FormatInt(c.HealthTimeout.Milliseconds(), 10))
	kv("health_start_period_ms", strconv.FormatInt(c.HealthStartPeriod.Milliseconds(), 10))
	kv("health_retries", strconv.Itoa(c.HealthRetries))
	for _, a := range c.Start {
		kv("start", a)
	}
	for _, a := range c.Cleanup {
		kv("cleanup", a)
	}
	for _, a := range c.Health {
		kv("health", a)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, confFile), b.Bytes(), 0o600, false); err != nil {
		return fmt.Errorf("write supervisor config: %w", err)
	}
	return nil
}

// Exit is a container exit as the supervisor recorded it in D/exit:
//
//	exit_code=<code, 128+signal for a signal>
//	finished_at=<RFC 3339, nanoseconds>
//	started_at=<RFC 3339, empty if the start failed>
//	start_failed=true|false
//	error=<the start callback's message (D/start.err), escaped>
//	restart_count=<restarts so far>
//	restarting=true|false    a restart follows
type Exit struct {
	Code         int
	FinishedAt   time.Time
	StartedAt    time.Time
	StartFailed  bool
	Error        string
	RestartCount int
	Restarting   bool
}

// ReadExit reads dir/exit; ok is false when there is none (the container
// has not exited since Spawn).
func ReadExit(dir string) (exit Exit, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, exitFile))
	if errors.Is(err, os.ErrNotExist) {
		return Exit{}, false, nil
	}
	if err != nil {
		return Exit{}, false, fmt.Errorf("read exit record: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), "=")
		if !found {
			return Exit{}, false, fmt.Errorf("exit record %s: malformed line %q", dir, sc.Text())
		}
		v = unescapeValue(v)
		switch k {
		case "exit_code":
			exit.Code, err = strconv.Atoi(v)
		case "finished_at":
			exit.FinishedAt, err = time.Parse(time.RFC3339Nano, v)
		case "started_at":
			if v != "" {
				exit.StartedAt, err = time.Parse(time.RFC3339Nano, v)
			}
		case "start_failed":
			exit.StartFailed, err = strconv.ParseBool(v)
		case "error":
			exit.Error = v
		case "restart_count":
			exit.RestartCount, err = strconv.Atoi(v)
		case "restarting":
			exit.Restarting, err = strconv.ParseBool(v)
		}
		if err != nil {
			return Exit{}, false, fmt.Errorf("exit record %s: %s: %w", dir, k, err)
		}
	}
	return exit, true, nil
}

func escapeValue(s string) string {
	if !strings.ContainsAny(s, "\\\n\r") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)
	return r.Replace(s)
}

func unescapeValue(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
