// berth's per-container supervisor (see package supervisor's doc comment).
//
// A constructor of the berth binary: when _BERTH_SUPERVISE names a container
// run directory, it runs the supervisor there and _exits, so the Go runtime
// of the binary never starts and the process stays a few hundred KiB.
//
// One thread, one epoll loop, level-triggered. Every descriptor is
// O_CLOEXEC; the callbacks get exactly the descriptors dup2'd for them.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <link.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "supervisor.h"

#define ENV_NAME "_BERTH_SUPERVISE"
#define MAX_CLIENTS 64
#define MAX_CTLS 16
#define READ_SIZE 32768
#define CLIENT_HIGH (256 * 1024) // stop reading the container while a client has this much queued
#define STDIN_CAP 65536
#define DRAIN_GRACE_MS 1000   // after the init exited, wait this long for the last writers of its stdio
#define CLIENT_LINGER_MS 5000 // after a run, wait this long for clients to take their last bytes
#define MAX_ARGS 256
#define REAPED_KEEP 16
#define IDLE_SHED_MS 2000 // quiet this long: give back the binary's pages (shed_startup_pages)
#define MAX_RECV_FDS 64   // descriptors one message may bring (recv_fds)

// Attach handshake: the client's first byte.
#define ATTACH_STDIN 1
#define ATTACH_STDOUT 2
#define ATTACH_STDERR 4

enum restart_policy { RP_NO, RP_ALWAYS, RP_UNLESS_STOPPED, RP_ON_FAILURE };
enum state { ST_WAITING, ST_STARTING, ST_RUNNING, ST_EXITING, ST_CLEANUP, ST_BACKOFF, ST_DONE };
enum health { H_NONE, H_STARTING, H_HEALTHY, H_UNHEALTHY };
enum wkind { W_SIGNAL, W_LISTEN_ATTACH, W_LISTEN_CTL, W_LISTEN_CONSOLE, W_CONSOLE, W_STREAM, W_STDIN, W_CLIENT, W_CTL, W_PIDFD, W_STARTER };

struct watch {
	enum wkind kind;
	int fd;
	uint32_t ev;
	int reg;
};

struct stream {
	struct watch w;      // must be first
	int id;              // 1 stdout, 2 stderr (stdcopy stream numbers)
	const char *name;
	char *line;          // partial log line
	size_t len;
};

struct client {
	struct watch w; // must be first
	int hs;         // handshake done
	int flags;      // ATTACH_*
	int in;         // owns stdin and has not closed it yet
	int rd_eof;
	int closing;    // the run ended: flush, shut down writing, wait for the peer
	int wr_shut;
	int dead;
	long long deadline;
	char *q;
	size_t qoff, qlen, qcap;
};

struct ctl {
	struct watch w; // must be first
	char buf[256];
	size_t len;
	int dead;
};

struct argv {
	char *v[MAX_ARGS + 2];
	int n;
};

static struct {
	char *id, *log_path;
	long long log_max_size;
	int log_max_file;
	int tty, open_stdin, stdin_once, wait_attach, client_start;
	int restart, max_retries;
	long long h_interval, h_timeout, h_start_period; // ms
	int h_retries;
	struct argv start, cleanup, health;
} conf;

static const char *rundir;
static int logfd = -1; // supervisor.log
static int epfd = -1;
static int devnull = -1;
static struct watch sig_w = {W_SIGNAL, -1, 0, 0};
static struct watch attach_l = {W_LISTEN_ATTACH, -1, 0, 0};
static struct watch ctl_l = {W_LISTEN_CTL, -1, 0, 0};
static struct watch console_l = {W_LISTEN_CONSOLE, -1, 0, 0};
static struct watch console_c = {W_CONSOLE, -1, 0, 0};
static struct watch pidfd_w = {W_PIDFD, -1, 0, 0};
static struct watch starter_w = {W_STARTER, -1, 0, 0}; // client_start: the engine starting the container
static struct watch stdin_w = {W_STDIN, -1, 0, 0};
static struct stream streams[2] = {
	{{W_STREAM, -1, 0, 0}, 1, "stdout", NULL, 0},
	{{W_STREAM, -1, 0, 0}, 2, "stderr", NULL, 0},
};
static int master_fd = -1; // tty: the pty master (streams[0] reads it)
static struct client *clients[MAX_CLIENTS];
static struct ctl *ctls[MAX_CTLS];
static struct sup_logw logw;
static char rbuf[READ_SIZE];

static enum state state;
static pid_t start_pid, cleanup_pid, health_pid, container_pid;
static pid_t stage_pid, pending_pid; // client_start: the process we exec'd for the engine, the init it reported
static int stage_spawned;
static int skip_cleanup; // the engine reported a failed start and cleaned up itself
static int exit_code, start_failed, stop_requested, will_restart, ever_running;
static int restart_count;
static long long backoff_ms;
static char errmsg[1024];
static long long run_started_mono, finished_mono;
static struct timespec run_started_rt, finished_rt;
static long long t_restart, t_health_next, t_health_kill, t_drain, t_listen, t_shed;
static enum health health = H_NONE;
static int failing_streak, health_timed_out, health_ignore;
static char *inbuf;
static size_t inlen;
static int in_open, in_close_pending, in_owners;
static struct winsize winsz;
static int have_winsz;
static struct {
	pid_t pid;
	int status;
} reaped[REAPED_KEEP];
static int reaped_next;

static long long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sup_log(const char *fmt, ...) {
	if (logfd < 0)
		return;
	char buf[1200];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	size_t n = sup_format_time(buf, &ts);
	buf[n++] = ' ';
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)sup_write_all(logfd, buf, n);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sup_log("fatal: %s", buf);
	_exit(1);
}

// ---- epoll registrations ----

// watch_set registers w for ev. With ev 0 the descriptor is removed from the
// set unless keep is set (epoll always reports HUP and ERR, so a registered
// descriptor nobody wants to read could spin the loop; only clients, which
// are dropped on HUP/ERR, stay registered with no events).
static void watch_set(struct watch *w, uint32_t ev, int keep) {
	if (w->fd < 0)
		return;
	if (ev == 0 && !keep) {
		if (w->reg && epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL) < 0)
			die("epoll_ctl del: %s", strerror(errno));
		w->reg = 0;
		return;
	}
	if (w->reg && w->ev == ev)
		return;
	struct epoll_event e;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.ptr = w;
	if (epoll_ctl(epfd, w->reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, w->fd, &e) < 0)
		die("epoll_ctl: %s", strerror(errno));
	w->reg = 1;
	w->ev = ev;
}

static void watch_close(struct watch *w) {
	if (w->fd < 0)
		return;
	if (w->reg)
		(void)epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
	close(w->fd);
	w->fd = -1;
	w->reg = 0;
	w->ev = 0;
}

static int set_nonblock(int fd) {
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// ---- small file helpers (all relative to the run directory, our cwd) ----

// open_file opens name (O_CLOEXEC; created 0644), retrying on EINTR.
static int open_file(const char *name, int flags) {
	int fd;
	do {
		fd = open(name, flags | O_CLOEXEC, 0644);
	} while (fd < 0 && errno == EINTR);
	return fd;
}

static int write_file_atomic(const char *name, const char *data, size_t n) {
	char tmp[64];
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	int fd = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC);
	if (fd < 0) {
		sup_log("create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (sup_write_all(fd, data, n) < 0) {
		sup_log("write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, name) < 0) {
		sup_log("rename %s to %s: %s", tmp, name, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

// read_small reads at most cap-1 bytes of name into buf, NUL-terminated.
static ssize_t read_small(const char *name, char *buf, size_t cap) {
	int fd = open_file(name, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t n = 0;
	while (n < cap - 1) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

// escape_value writes s with '\' and newlines escaped (the conf and exit
// files' value syntax).
static size_t escape_value(char *dst, size_t cap, const char *s) {
	size_t n = 0;
	for (; *s && n + 3 < cap; s++) {
		if (*s == '\\') {
			dst[n++] = '\\';
			dst[n++] = '\\';
		} else if (*s == '\n') {
			dst[n++] = '\\';
			dst[n++] = 'n';
		} else if (*s == '\r') {
			dst[n++] = '\\';
			dst[n++] = 'r';
		} else {
			dst[n++] = *s;
		}
	}
	dst[n] = '\0';
	return n;
}

static void unescape_value(char *s) {
	char *d = s;
	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
			*d++ = *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

// ---- configuration ----

static int parse_bool(const char *key, const char *v) {
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		return 1;
	if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || *v == '\0')
		return 0;
	die("supervisor.conf: %s: %s is not a boolean", key, v);
}

static long long parse_num(const char *key, const char *v) {
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || x < 0)
		die("supervisor.conf: %s: %s is not a non-negative integer", key, v);
	return x;
}

static void push_arg(struct argv *a, const char *key, char *v) {
	if (a->n >= MAX_ARGS)
		die("supervisor.conf: %s: more than %d arguments", key, MAX_ARGS);
	a->v[a->n++] = v;
	a->v[a->n] = NULL;
}

static void load_config(void) {
	static char text[65536];
	ssize_t n = read_small("supervisor.conf", text, sizeof(text));
	if (n < 0)
		die("read %s/supervisor.conf: %s", rundir, strerror(errno));
	if ((size_t)n == sizeof(text) - 1)
		die("supervisor.conf: larger than %zu bytes", sizeof(text) - 1);
	conf.log_max_file = 1;
	conf.restart = RP_NO;
	int lineno = 0;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (*line == '#' || *line == '\0')
			continue;
		char *eq = strchr(line, '=');
		if (eq == NULL)
			die("supervisor.conf line %d: no '=' in %.64s", lineno, line);
		*eq = '\0';
		char *k = line, *v = eq + 1;
		unescape_value(v);
		if (strcmp(k, "id") == 0)
			conf.id = v;
		else if (strcmp(k, "log_path") == 0)
			conf.log_path = v;
		else if (strcmp(k, "log_max_size") == 0)
			conf.log_max_size = parse_num(k, v);
		else if (strcmp(k, "log_max_file") == 0)
			conf.log_max_file = (int)parse_num(k, v);
		else if (strcmp(k, "tty") == 0)
			conf.tty = parse_bool(k, v);
		else if (strcmp(k, "open_stdin") == 0)
			conf.open_stdin = parse_bool(k, v);
		else if (strcmp(k, "stdin_once") == 0)
			conf.stdin_once = parse_bool(k, v);
		else if (strcmp(k, "wait_attach") == 0)
			conf.wait_attach = parse_bool(k, v);
		else if (strcmp(k, "client_start") == 0)
			conf.client_start = parse_bool(k, v);
		else if (strcmp(k, "restart") == 0) {
			if (strcmp(v, "no") == 0 || *v == '\0')
				conf.restart = RP_NO;
			else if (strcmp(v, "always") == 0)
				conf.restart = RP_ALWAYS;
			else if (strcmp(v, "unless-stopped") == 0)
				conf.restart = RP_UNLESS_STOPPED;
			else if (strcmp(v, "on-failure") == 0)
				conf.restart = RP_ON_FAILURE;
			else
				die("supervisor.conf: restart: unknown policy %.64s", v);
		} else if (strcmp(k, "restart_max_retries") == 0)
			conf.max_retries = (int)parse_num(k, v);
		else if (strcmp(k, "health_interval_ms") == 0)
			conf.h_interval = parse_num(k, v);
		else if (strcmp(k, "health_timeout_ms") == 0)
			conf.h_timeout = parse_num(k, v);
		else if (strcmp(k, "health_start_period_ms") == 0)
			conf.h_start_period = parse_num(k, v);
		else if (strcmp(k, "health_retries") == 0)
			conf.h_retries = (int)parse_num(k, v);
		else if (strcmp(k, "start") == 0)
			push_arg(&conf.start, k, v);
		else if (strcmp(k, "cleanup") == 0)
			push_arg(&conf.cleanup, k, v);
		else if (strcmp(k, "health") == 0)
			push_arg(&conf.health, k, v);
		else
			die("supervisor.conf line %d: unknown key %.64s", lineno, k);
	}
	if (conf.start.n == 0)
		die("supervisor.conf: no start command");
	if (conf.h_interval > 0 && conf.health.n == 0)
		die("supervisor.conf: health_interval_ms set but no health command");
	if (conf.log_max_file < 1)
		conf.log_max_file = 1;
}

// ---- child processes ----

// child_signals (in a child we forked, before it execs): no signal blocked,
// SIGPIPE and SIGHUP back to their defaults (the supervisor ignores them).
static void child_signals(void) {
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
}

// spawn runs argv (with one extra trailing argument if extra is set) with
// fds[0..nfds-1] as its descriptors 0..nfds-1. Every other descriptor of
// ours is O_CLOEXEC. pgrp: put the child in its own process group.
static pid_t spawn(struct argv *a, const char *extra, const int *fds, int nfds, int pgrp) {
	char *argv[MAX_ARGS + 2];
	int n = 0;
	for (int i = 0; i < a->n; i++)
		argv[n++] = a->v[i];
	if (extra)
		argv[n++] = (char *)extra;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid != 0) {
		if (pid > 0 && pgrp)
			(void)setpgid(pid, pid); // also in the child: whoever runs first
		return pid;
	}
	// Child: only async-signal-safe calls from here on (we are
	// single-threaded, but keep to the rule anyway).
	child_signals();
	if (pgrp)
		(void)setpgid(0, 0);
	// Sources are all > 2 (0-2 are /dev/null in the supervisor) except
	// possibly for target 3; fill 0-2 first so no source gets clobbered.
	for (int i = 0; i < nfds; i++) {
		if (fds[i] == i) {
			int fl = fcntl(i, F_GETFD);
			if (fl < 0 || fcntl(i, F_SETFD, fl & ~FD_CLOEXEC) < 0)
				_exit(126);
		} else if (dup2(fds[i], i) < 0) {
			_exit(126);
		}
	}
	execv(argv[0], argv);
	int e = errno;
	char msg[512];
	int m = snprintf(msg, sizeof(msg), "exec %s: %s\n", argv[0], strerror(e));
	if (m > 0 && nfds >= 3)
		(void)!write(nfds > 3 ? 3 : 2, msg, (size_t)m);
	_exit(e == ENOENT ? 127 : 126);
}

// is_child: pid is a child of ours not reaped yet (it may have exited).
static int is_child(pid_t pid) {
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static int status_code(int st) {
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

// ---- exit record ----

static void write_exit(void) {
	char buf[4096], t1[40], t2[40], err[2200];
	sup_format_time(t1, &finished_rt);
	if (ever_running && !start_failed)
		sup_format_time(t2, &run_started_rt);
	else
		t2[0] = '\0';
	escape_value(err, sizeof(err), errmsg);
	int n = snprintf(buf, sizeof(buf),
			 "exit_code=%d\nfinished_at=%s\nstarted_at=%s\nstart_failed=%s\nerror=%s\nrestart_count=%d\nrestarting=%s\n",
			 exit_code, t1, t2, start_failed ? "true" : "false", err, restart_count,
			 will_restart && !stop_requested ? "true" : "false");
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)strlen(buf);
	(void)write_file_atomic("exit", buf, (size_t)n);
}

// ---- attach clients ----

static void client_drop(struct client *c);

static void stdin_maybe_close(void) {
	if (!in_close_pending || inlen > 0)
		return;
	in_close_pending = 0;
	if (conf.tty)
		return; // a terminal has no separate input to close
	in_open = 0;
	watch_close(&stdin_w);
}

static void stdin_owner_gone(struct client *c) {
	if (!c->in)
		return;
	c->in = 0;
	if (--in_owners == 0 && conf.stdin_once)
		in_close_pending = 1;
	stdin_maybe_close();
}

static void stdin_flush(void) {
	while (inlen > 0 && stdin_w.fd >= 0) {
		ssize_t n = write(stdin_w.fd, inbuf, inlen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			// EPIPE: the container closed its stdin.
			inlen = 0;
			in_open = 0;
			watch_close(&stdin_w);
			break;
		}
		memmove(inbuf, inbuf + n, inlen - (size_t)n);
		inlen -= (size_t)n;
	}
	stdin_maybe_close();
}

static void client_flush(struct client *c) {
	while (!c->dead && c->qoff < c->qlen) {
		ssize_t n = send(c->w.fd, c->q + c->qoff, c->qlen - c->qoff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			client_drop(c);
			return;
		}
		c->qoff += (size_t)n;
	}
	if (c->dead)
		return;
	c->qoff = c->qlen = 0;
	if (c->qcap > 65536) {
		free(c->q);
		c->q = NULL;
		c->qcap = 0;
	}
	if (c->closing && !c->wr_shut) {
		(void)shutdown(c->w.fd, SHUT_WR);
		c->wr_shut = 1;
	}
}

static void client_enqueue(struct client *c, const char *hdr, size_t hl, const char *data, size_t n) {
	if (c->qoff > 0 && c->qoff == c->qlen)
		c->qoff = c->qlen = 0;
	if (c->qlen + hl + n > c->qcap) {
		if (c->qoff > 0) {
			memmove(c->q, c->q + c->qoff, c->qlen - c->qoff);
			c->qlen -= c->qoff;
			c->qoff = 0;
		}
		size_t want = c->qlen + hl + n;
		if (want > c->qcap) {
			size_t cap = c->qcap ? c->qcap : 4096;
			while (cap < want)
				cap *= 2;
			char *q = realloc(c->q, cap);
			if (q == NULL) {
				sup_log("attach client: out of memory, dropping it");
				client_drop(c);
				return;
			}
			c->q = q;
			c->qcap = cap;
		}
	}
	memcpy(c->q + c->qlen, hdr, hl);
	memcpy(c->q + c->qlen + hl, data, n);
	c->qlen += hl + n;
	client_flush(c);
}

static void client_drop(struct client *c) {
	if (c->dead)
		return;
	stdin_owner_gone(c);
	watch_close(&c->w);
	c->dead = 1;
}

// client_end_run: the output of this run is over for c. A client that has
// not sent its handshake yet waits for the next run, unless there is none
// (all: the supervisor is about to exit).
static void client_end_run(struct client *c, int all) {
	if (c->dead || c->closing || (!c->hs && !all))
		return;
	c->closing = 1;
	c->deadline = now_ms() + CLIENT_LINGER_MS;
	if (c->in) { // its input belongs to the run that ended
		c->in = 0;
		in_owners--;
	}
	client_flush(c);
}

static void start_container(void);

static void client_handshake(struct client *c) {
	unsigned char b;
	ssize_t n = recv(c->w.fd, &b, 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		client_drop(c);
		return;
	}
	c->hs = 1;
	c->flags = b & (ATTACH_STDIN | ATTACH_STDOUT | ATTACH_STDERR);
	char ack = conf.tty ? 'T' : 'M';
	if (send(c->w.fd, &ack, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
		client_drop(c);
		return;
	}
	int between = state == ST_EXITING || state == ST_DONE || (state == ST_CLEANUP && !will_restart);
	if (c->closing || between) {
		// Nothing more will come: EOF at once.
		c->closing = 0;
		client_end_run(c, 1);
		return;
	}
	if ((c->flags & ATTACH_STDIN) && conf.open_stdin && in_open) {
		c->in = 1;
		in_owners++;
	}
	if (state == ST_WAITING)
		start_container();
}

static void client_read(struct client *c) {
	if (!c->hs) {
		client_handshake(c);
		return;
	}
	ssize_t n;
	int tostdin = c->in && in_open;
	if (tostdin) {
		if (inbuf == NULL && (inbuf = malloc(STDIN_CAP)) == NULL) {
			sup_log("stdin buffer: out of memory");
			return;
		}
		if (inlen == STDIN_CAP)
			return;
		n = recv(c->w.fd, inbuf + inlen, STDIN_CAP - inlen, MSG_DONTWAIT);
	} else {
		n = recv(c->w.fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
	}
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		client_drop(c);
		return;
	}
	if (n == 0) {
		c->rd_eof = 1;
		stdin_owner_gone(c);
		return;
	}
	if (tostdin) {
		inlen += (size_t)n;
		stdin_flush();
	}
}

// accept_conn accepts a connection on l (non-blocking, O_CLOEXEC). Out of
// descriptors or memory, it reports so and pauses the listeners for a
// second (t_listen) instead of spinning on the pending connection.
static int accept_conn(struct watch *l, const char *what) {
	int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
		sup_log("accept %s: %s", what, strerror(errno));
		t_listen = now_ms() + 1000;
	}
	return fd;
}

static void accept_client(void) {
	int fd = accept_conn(&attach_l, "attach client");
	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i] == NULL) {
			struct client *c = calloc(1, sizeof(*c));
			if (c == NULL)
				break;
			c->w.kind = W_CLIENT;
			c->w.fd = fd;
			clients[i] = c;
			return;
		}
	}
	sup_log("too many attach clients, refusing one");
	close(fd);
}

// ---- container output ----

static void log_line(struct stream *s, const char *p, size_t n, const struct timespec *ts) {
	sup_logw_write(&logw, conf.tty ? "stdout" : s->name, p, n, ts);
}

// stream_log splits data into log entries at '\n' and every SUP_LOG_LINE_MAX
// bytes, keeping an unfinished line for the next read.
static void stream_log(struct stream *s, const char *p, size_t n, const struct timespec *ts) {
	if (logw.fd < 0)
		return;
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) + 1 : n;
		size_t room = SUP_LOG_LINE_MAX - s->len;
		int complete = nl != NULL;
		if (seg > room) {
			seg = room;
			complete = 0;
		}
		if (s->len == 0 && (complete || seg == SUP_LOG_LINE_MAX)) {
			log_line(s, p, seg, ts);
		} else {
			if (s->line == NULL && (s->line = malloc(SUP_LOG_LINE_MAX)) == NULL) {
				sup_log("log line buffer: out of memory");
				return;
			}
			memcpy(s->line + s->len, p, seg);
			s->len += seg;
			if (complete || s->len == SUP_LOG_LINE_MAX) {
				log_line(s, s->line, s->len, ts);
				s->len = 0;
			}
		}
		p += seg;
		n -= seg;
	}
}

static void stream_deliver(struct stream *s, const char *p, size_t n) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned char hdr[8] = {(unsigned char)s->id, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
				(unsigned char)(n >> 8), (unsigned char)n};
	int want = conf.tty ? ATTACH_STDOUT : (s->id == 1 ? ATTACH_STDOUT : ATTACH_STDERR);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = clients[i];
		if (c && !c->dead && c->hs && !c->closing && (c->flags & want))
			client_enqueue(c, (const char *)hdr, conf.tty ? 0 : 8, p, n);
	}
	stream_log(s, p, n, &ts);
}

static void stream_eof(struct stream *s) {
	if (s->len > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		log_line(s, s->line, s->len, &ts);
		s->len = 0;
	}
	free(s->line);
	s->line = NULL;
	watch_close(&s->w);
	if (s == &streams[0])
		master_fd = -1; // was the same descriptor
}

// stream_read reads once; returns 1 if more may be readable now.
static int stream_read(struct stream *s) {
	ssize_t n = read(s->w.fd, rbuf, sizeof(rbuf));
	if (n < 0) {
		if (errno == EINTR)
			return 1;
		if (errno == EAGAIN)
			return 0;
		if (errno != EIO) // EIO: a pty whose slave side is closed
			sup_log("read container %s: %s", s->name, strerror(errno));
		stream_eof(s);
		return 0;
	}
	if (n == 0) {
		stream_eof(s);
		return 0;
	}
	stream_deliver(s, rbuf, (size_t)n);
	return 1;
}

// ---- the console socket (tty) ----

static void console_accept(void) {
	int fd = accept_conn(&console_l, "console connection");
	if (fd < 0)
		return;
	watch_close(&console_c);
	console_c.fd = fd;
	watch_set(&console_c, EPOLLIN, 0);
}

// recv_fds receives one message on fd (without blocking) into buf, at most
// len bytes, with the descriptors that came with it (O_CLOEXEC): the first
// max of them go to fds, *nfd of them; it closes the rest. Returns what
// recvmsg did; *trunc (unless NULL): the message or its descriptors did
// not fit.
static ssize_t recv_fds(int fd, char *buf, size_t len, int *fds, int max, int *nfd, int *trunc) {
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MAX_RECV_FDS * sizeof(int))];
	} cm;
	struct iovec iov = {buf, len};
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.b;
	msg.msg_controllen = sizeof(cm.b);
	ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	*nfd = 0;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); n > 0 && h; h = CMSG_NXTHDR(&msg, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *p = (int *)CMSG_DATA(h);
		for (int i = 0; i < k; i++) {
			if (*nfd < max)
				fds[(*nfd)++] = p[i];
			else
				close(p[i]);
		}
	}
	if (trunc)
		*trunc = n > 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
	return n;
}

static void console_recv(void) {
	char name[4096];
	int got = -1, nfd;
	ssize_t n = recv_fds(console_c.fd, name, sizeof(name), &got, 1, &nfd, NULL);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	watch_close(&console_c);
	if (got < 0) {
		if (n < 0)
			sup_log("receive console: %s", strerror(errno));
		else
			sup_log("console connection closed without a terminal");
		return;
	}
	if (!isatty(got)) {
		sup_log("console socket: received a descriptor that is not a terminal");
		close(got);
		return;
	}
	if (set_nonblock(got) < 0) {
		sup_log("set terminal non-blocking: %s", strerror(errno));
		close(got);
		return;
	}
	if (streams[0].w.fd >= 0)
		stream_eof(&streams[0]); // a second terminal replaces the first
	watch_close(&stdin_w);
	master_fd = got;
	streams[0].w.fd = got;
	streams[0].len = 0;
	if (have_winsz && ioctl(got, TIOCSWINSZ, &winsz) < 0)
		sup_log("set terminal size: %s", strerror(errno));
	if (conf.open_stdin && in_open) {
		stdin_w.fd = fcntl(got, F_DUPFD_CLOEXEC, 3);
		if (stdin_w.fd < 0)
			sup_log("dup terminal for input: %s", strerror(errno));
		stdin_flush();
	}
}

// ---- health checks ----

static void health_schedule(void) {
	t_health_next = conf.h_interval > 0 ? now_ms() + conf.h_interval : 0;
}

static void health_run(void) {
	int fds[3] = {devnull, devnull, logfd >= 0 ? logfd : devnull};
	pid_t pid = spawn(&conf.health, NULL, fds, 3, 1);
	if (pid < 0) {
		sup_log("run health check: %s", strerror(errno));
		health_schedule();
		return;
	}
	health_pid = pid;
	health_timed_out = 0;
	health_ignore = 0;
	t_health_kill = conf.h_timeout > 0 ? now_ms() + conf.h_timeout : 0;
}

static void health_stop(void) {
	t_health_next = 0;
	t_health_kill = 0;
	if (health_pid > 0) {
		(void)kill(-health_pid, SIGKILL);
		health_ignore = 1;
	}
}

static void on_health_exit(int st) {
	health_pid = 0;
	t_health_kill = 0;
	if (health_ignore || state != ST_RUNNING)
		return;
	int ok = !health_timed_out && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (ok) {
		health = H_HEALTHY;
		failing_streak = 0;
	} else if (now_ms() - run_started_mono >= conf.h_start_period) {
		// Failures in the start period do not count (as Docker).
		failing_streak++;
		if (failing_streak >= (conf.h_retries > 0 ? conf.h_retries : 1))
			health = H_UNHEALTHY;
	}
	health_schedule();
}

// ---- the container's life ----

static void start_failure(int code, const char *msg);
static void on_container_exit(int st, int known);
static void container_started(pid_t pid);

static void close_stdio(void) {
	for (int i = 0; i < 2; i++)
		if (streams[i].w.fd >= 0)
			stream_eof(&streams[i]);
	watch_close(&stdin_w);
	watch_close(&console_c);
	master_fd = -1;
}

// stdio_open makes the container's stdio pipes (none with a terminal)
// and puts the ends the container gets in child[0..2] (/dev/null where
// there is none). Returns -1 with a message in m on failure.
static int stdio_open(int child[3], int outp[2], int errp[2], int inp[2], char *m, size_t mlen) {
	child[0] = child[1] = child[2] = devnull;
	outp[0] = outp[1] = errp[0] = errp[1] = inp[0] = inp[1] = -1;
	if (conf.tty)
		return 0;
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || (conf.open_stdin && pipe2(inp, O_CLOEXEC) < 0)) {
		int e = errno;
		for (int i = 0; i < 2; i++) {
			if (outp[i] >= 0)
				close(outp[i]);
			if (errp[i] >= 0)
				close(errp[i]);
		}
		snprintf(m, mlen, "create container stdio pipes: %s", strerror(e));
		return -1;
	}
	child[1] = outp[1];
	child[2] = errp[1];
	if (conf.open_stdin)
		child[0] = inp[0];
	return 0;
}

// stdio_spawned: the container's process got its ends (ok) or could not
// be started: close what the supervisor no longer needs, and watch the
// container's output.
static void stdio_spawned(int ok, int outp[2], int errp[2], int inp[2]) {
	if (conf.tty)
		return;
	close(outp[1]);
	close(errp[1]);
	if (inp[0] >= 0)
		close(inp[0]);
	if (!ok) {
		close(outp[0]);
		close(errp[0]);
		if (inp[1] >= 0)
			close(inp[1]);
		return;
	}
	streams[0].w.fd = outp[0];
	streams[1].w.fd = errp[0];
	for (int i = 0; i < 2; i++) {
		streams[i].len = 0;
		(void)set_nonblock(streams[i].w.fd);
	}
	if (inp[1] >= 0) {
		(void)set_nonblock(inp[1]);
		stdin_w.fd = inp[1];
		if (!in_open) // stdin was closed (stdin-once) before the start
			watch_close(&stdin_w);
		else
			stdin_flush();
	}
}

static void run_starting(void) {
	state = ST_STARTING;
	start_failed = 0;
	errmsg[0] = '\0';
	health = conf.h_interval > 0 ? H_STARTING : H_NONE;
	failing_streak = 0;
}

static void start_container(void) {
	run_starting();
	if (unlink("pid") < 0 && errno != ENOENT)
		sup_log("remove stale pid file: %s", strerror(errno));

	int errfd = open_file("start.err", O_WRONLY | O_CREAT | O_TRUNC);
	if (errfd < 0) {
		start_failure(125, "cannot create start.err");
		return;
	}
	int child[4], outp[2], errp[2], inp[2];
	char m[128];
	if (stdio_open(child, outp, errp, inp, m, sizeof(m)) < 0) {
		close(errfd);
		start_failure(125, m);
		return;
	}
	if (conf.tty)
		child[2] = errfd;
	child[3] = errfd;
	pid_t pid = spawn(&conf.start, NULL, child, 4, 0);
	int e = errno;
	close(errfd);
	stdio_spawned(pid > 0, outp, errp, inp);
	if (pid < 0) {
		snprintf(m, sizeof(m), "fork start callback: %s", strerror(e));
		start_failure(125, m);
		return;
	}
	start_pid = pid;
}

// run_exiting: the run is over (exit_code says how); note when, and wait
// (ST_EXITING, at most DRAIN_GRACE_MS) for the rest of its output.
static void run_exiting(void) {
	clock_gettime(CLOCK_REALTIME, &finished_rt);
	finished_mono = now_ms();
	health_stop();
	watch_close(&pidfd_w);
	state = ST_EXITING;
	t_drain = now_ms() + DRAIN_GRACE_MS;
}

static void start_failure(int code, const char *msg) {
	start_failed = 1;
	exit_code = code;
	snprintf(errmsg, sizeof(errmsg), "%s", msg);
	run_exiting();
}

static void on_container_exit(int st, int known) {
	container_pid = 0;
	exit_code = known ? status_code(st) : 255;
	run_exiting();
}

static void on_start_exit(int st) {
	start_pid = 0;
	if (state != ST_STARTING)
		return;
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		char msg[1024];
		ssize_t n = read_small("start.err", msg, sizeof(msg));
		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		if (n <= 0)
			snprintf(msg, sizeof(msg), "start callback %s %d", WIFEXITED(st) ? "exited with status" : "killed by signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		start_failure(status_code(st), msg);
		return;
	}
	char buf[64];
	char *end = NULL;
	long pid = 0;
	if (read_small("pid", buf, sizeof(buf)) > 0)
		pid = strtol(buf, &end, 10);
	if (pid <= 0 || pid > INT_MAX || end == NULL || (*end != '\0' && *end != '\n')) {
		start_failure(125, "start callback exited 0 without writing the container's pid to the pid file");
		return;
	}
	container_started((pid_t)pid);
}

// container_started: the container's init pid runs (a start callback or
// the engine said so).
static void container_started(pid_t pid) {
	container_pid = pid;
	state = ST_RUNNING;
	ever_running = 1;
	run_started_mono = now_ms();
	clock_gettime(CLOCK_REALTIME, &run_started_rt);
	health_schedule();

	// It may have exited (and been reaped) before the callback did.
	for (int i = 0; i < REAPED_KEEP; i++) {
		if (reaped[i].pid == container_pid) {
			reaped[i].pid = 0;
			on_container_exit(reaped[i].status, 1);
			return;
		}
	}
	if (is_child(pid))
		return; // our child: SIGCHLD will tell
	// Not our child (the callback put it somewhere else): watch it with a
	// pidfd; its exit status cannot be known.
	sup_log("container pid %ld is not a child of the supervisor; its exit code will be unknown", (long)pid);
	int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (pfd < 0) {
		on_container_exit(0, 0);
		return;
	}
	(void)fcntl(pfd, F_SETFD, FD_CLOEXEC);
	pidfd_w.fd = pfd;
	watch_set(&pidfd_w, EPOLLIN, 0);
}

static int decide_restart(void) {
	if (stop_requested || !ever_running)
		return 0;
	// Docker's back-off: 100 ms doubling up to a minute, back to the start
	// once a run lasted 10 s.
	if (!start_failed && finished_mono - run_started_mono >= 10000)
		backoff_ms = 0;
	if (backoff_ms == 0)
		backoff_ms = 100;
	else if (backoff_ms < 60000)
		backoff_ms *= 2;
	if (backoff_ms > 60000)
		backoff_ms = 60000;
	int r = 0;
	switch (conf.restart) {
	case RP_NO:
		break;
	case RP_ALWAYS:
	case RP_UNLESS_STOPPED:
		r = 1;
		break;
	case RP_ON_FAILURE:
		r = exit_code != 0 && (conf.max_retries == 0 || restart_count < conf.max_retries);
		break;
	}
	if (r)
		restart_count++;
	return r;
}

static void after_cleanup(void) {
	if (will_restart && !stop_requested) {
		state = ST_BACKOFF;
		t_restart = now_ms() + backoff_ms;
		return;
	}
	if (will_restart) { // a stop arrived while cleaning up
		will_restart = 0;
		write_exit();
	}
	state = ST_DONE;
}

// finish_run: the container's output is all in; record the exit, end the
// clients' streams, clean up.
static void finish_run(void) {
	for (int i = 0; i < 2; i++) {
		int guard = 64; // bounded: a writer may still be alive
		while (streams[i].w.fd >= 0 && guard-- > 0 && stream_read(&streams[i]))
			;
	}
	close_stdio();
	t_drain = 0;
	inlen = 0;
	in_open = conf.open_stdin;
	in_close_pending = 0;
	will_restart = decide_restart();
	write_exit();
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i])
			client_end_run(clients[i], 0);
	in_owners = 0;
	if (conf.cleanup.n > 0 && !skip_cleanup) {
		char code[16];
		snprintf(code, sizeof(code), "%d", exit_code);
		int fds[3] = {devnull, devnull, logfd >= 0 ? logfd : devnull};
		pid_t pid = spawn(&conf.cleanup, code, fds, 3, 0);
		if (pid > 0) {
			cleanup_pid = pid;
			state = ST_CLEANUP;
			return;
		}
		sup_log("run cleanup callback: %s", strerror(errno));
	}
	after_cleanup();
}

static void reap(void) {
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0)
			return;
		if (p == start_pid)
			on_start_exit(st);
		else if (p == container_pid && container_pid > 0)
			on_container_exit(st, 1);
		else if (p == cleanup_pid) {
			cleanup_pid = 0;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				sup_log("cleanup callback failed: status %d", status_code(st));
			after_cleanup();
		} else if (p == health_pid)
			on_health_exit(st);
		else {
			reaped[reaped_next].pid = p;
			reaped[reaped_next].status = st;
			reaped_next = (reaped_next + 1) % REAPED_KEEP;
		}
	}
}

static void on_signal(void) {
	struct signalfd_siginfo si;
	for (;;) {
		ssize_t n = read(sig_w.fd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			break;
	}
	reap();
}

// ---- the engine's start (client_start) ----
//
// With client_start the engine creates the container itself (it has the
// state open already) over the descriptor _BERTH_SUPERVISE_CLIENT names, a
// SOCK_SEQPACKET socket; only the container's first process is ours to
// start, so that the init is our child. One message, one reply each:
//
//	exec FLAGS\n(arg S\n)*(env S\n)*  + descriptors [exe, fd3, fd4, ...]
//	                                    -> "ok PID" | "error MSG"
//	pid PID        the init, when exec started an intermediate  -> "ok"
//	started PID    the container runs; the socket is done        -> "ok"
//	failed CODE MSG  the start failed; the engine cleaned up (no
//	                 cleanup callback follows)                   -> "ok"
//
// exec clones (with the namespace flags FLAGS, hex) a process with the
// container's stdio as 0-2 and the descriptors as 3, 4, ... and executes
// exe through its descriptor. The socket closing before "started" (the
// engine died) is a start failure: the processes it had us start are
// killed.

#define STARTER_MAX_FDS MAX_RECV_FDS
#define STARTER_MAX_STRS 64

static void starter_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void starter_reply(const char *fmt, ...) {
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (starter_w.fd >= 0)
		(void)send(starter_w.fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// kill_child kills p if it is our child and not reaped yet (so the pid is
// certainly still its).
static void kill_child(pid_t p) {
	if (p > 0 && is_child(p))
		(void)kill(p, SIGKILL);
}

static void starter_abort(int code, const char *msg) {
	watch_close(&starter_w);
	if (state != ST_STARTING)
		return;
	kill_child(stage_pid);
	kill_child(pending_pid);
	stage_pid = pending_pid = 0;
	start_failure(code, msg);
}

// spawn_stage clones the engine's process (see above); fds[0..n-1] become
// its descriptors 0..n-1.
static pid_t spawn_stage(int exefd, char **argv, char **envp, const int *fds, int n, unsigned long flags) {
	pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (pid != 0)
		return pid;
	child_signals();
	// Move every source above the targets first, so that no dup2 clobbers
	// one still to be placed.
	int tmp[STARTER_MAX_FDS + 3];
	for (int i = 0; i < n; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, n)) < 0)
			_exit(126);
	int exe = fcntl(exefd, F_DUPFD_CLOEXEC, n);
	if (exe < 0)
		_exit(126);
	for (int i = 0; i < n; i++)
		if (dup2(tmp[i], i) < 0)
			_exit(126);
	syscall(SYS_execveat, exe, "", argv, envp, AT_EMPTY_PATH);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", exe);
	execve(path, argv, envp);
	_exit(127);
}

static void starter_exec(char *body, const int *fds, int nfd) {
	if (state != ST_STARTING || stage_spawned) {
		starter_reply("error exec: not expected now");
		return;
	}
	if (nfd < 1 || nfd > STARTER_MAX_FDS) {
		starter_reply("error exec: want the executable and at most %d descriptors", STARTER_MAX_FDS - 1);
		return;
	}
	char *argv[STARTER_MAX_STRS + 1], *envp[STARTER_MAX_STRS + 1];
	int na = 0, ne = 0;
	char *save = NULL;
	char *line = strtok_r(body, "\n", &save);
	char *end;
	errno = 0;
	unsigned long flags = line ? strtoul(line, &end, 16) : 0;
	if (line == NULL || *line == '\0' || *end != '\0' || errno != 0 ||
	    (flags & ~(unsigned long)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP))) {
		starter_reply("error exec: bad clone flags");
		return;
	}
	for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "arg ", 4) == 0 && na < STARTER_MAX_STRS)
			argv[na++] = line + 4;
		else if (strncmp(line, "env ", 4) == 0 && ne < STARTER_MAX_STRS)
			envp[ne++] = line + 4;
		else {
			starter_reply("error exec: bad line %.64s", line);
			return;
		}
	}
	argv[na] = NULL;
	envp[ne] = NULL;
	if (na == 0) {
		starter_reply("error exec: no arguments");
		return;
	}
	int child[STARTER_MAX_FDS + 3], outp[2], errp[2], inp[2];
	char m[128];
	if (stdio_open(child, outp, errp, inp, m, sizeof(m)) < 0) {
		starter_reply("error %s", m);
		return;
	}
	for (int i = 1; i < nfd; i++)
		child[2 + i] = fds[i];
	pid_t pid = spawn_stage(fds[0], argv, envp, child, 2 + nfd, flags);
	int e = errno;
	stdio_spawned(pid > 0, outp, errp, inp);
	if (pid < 0) {
		starter_reply("error clone: %s", strerror(e));
		return;
	}
	stage_spawned = 1;
	stage_pid = pid;
	starter_reply("ok %d", (int)pid);
}

static int parse_pid(const char *s, pid_t *out) {
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || errno != 0 || v <= 0 || v > INT_MAX || (*end != '\0' && *end != ' '))
		return -1;
	*out = (pid_t)v;
	return 0;
}

static void starter_read(void) {
	static char buf[16384];
	int fds[STARTER_MAX_FDS], nfd, trunc;
	ssize_t n = recv_fds(starter_w.fd, buf, sizeof(buf) - 1, fds, STARTER_MAX_FDS, &nfd, &trunc);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		starter_abort(125, "the engine starting the container exited before it started");
	} else if (trunc) {
		starter_reply("error message too long");
		starter_abort(125, "the engine sent the supervisor a message too long");
	} else {
		buf[n] = '\0';
		pid_t pid;
		if (strncmp(buf, "exec ", 5) == 0) {
			starter_exec(buf + 5, fds, nfd);
		} else if (strncmp(buf, "pid ", 4) == 0 && parse_pid(buf + 4, &pid) == 0) {
			pending_pid = pid;
			starter_reply("ok");
		} else if (strncmp(buf, "started ", 8) == 0 && parse_pid(buf + 8, &pid) == 0) {
			if (state == ST_STARTING) {
				stage_pid = pending_pid = 0;
				container_started(pid);
				starter_reply("ok");
			} else {
				starter_reply("error the supervisor is not starting a container");
			}
			watch_close(&starter_w);
		} else if (strncmp(buf, "failed ", 7) == 0) {
			char *rest;
			errno = 0;
			long code = strtol(buf + 7, &rest, 10);
			if (errno != 0 || code < 0 || code > 255)
				code = 125;
			if (*rest == ' ')
				rest++;
			starter_reply("ok");
			skip_cleanup = 1;
			starter_abort((int)code, *rest ? rest : "container failed to start");
		} else {
			starter_reply("error unknown command %.64s", buf);
		}
	}
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
}

// ---- control commands ----

static const char *state_name(void) {
	switch (state) {
	case ST_WAITING:
		return "created";
	case ST_STARTING:
		return "starting";
	case ST_RUNNING:
		return "running";
	case ST_EXITING:
		return "exiting";
	case ST_CLEANUP:
		return will_restart && !stop_requested ? "restarting" : "exited";
	case ST_BACKOFF:
		return "restarting";
	case ST_DONE:
		return "exited";
	}
	return "unknown";
}

static const char *health_name(void) {
	switch (health) {
	case H_NONE:
		return "none";
	case H_STARTING:
		return "starting";
	case H_HEALTHY:
		return "healthy";
	case H_UNHEALTHY:
		return "unhealthy";
	}
	return "unknown";
}

static void ctl_drop(struct ctl *c) {
	watch_close(&c->w);
	c->dead = 1;
}

static void ctl_command(struct ctl *c, char *line) {
	char reply[512];
	size_t len = strlen(line);
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
		line[--len] = '\0';
	if (strncmp(line, "resize ", 7) == 0) {
		unsigned h = 0, w = 0;
		char extra;
		if (sscanf(line + 7, "%u %u %c", &h, &w, &extra) != 2 || h > 65535 || w > 65535) {
			snprintf(reply, sizeof(reply), "error resize: want \"resize ROWS COLS\"\n");
		} else if (!conf.tty) {
			snprintf(reply, sizeof(reply), "error resize: the container has no terminal\n");
		} else {
			winsz.ws_row = (unsigned short)h;
			winsz.ws_col = (unsigned short)w;
			have_winsz = 1;
			if (master_fd >= 0 && ioctl(master_fd, TIOCSWINSZ, &winsz) < 0)
				snprintf(reply, sizeof(reply), "error resize: %s\n", strerror(errno));
			else
				snprintf(reply, sizeof(reply), "ok\n");
		}
	} else if (strcmp(line, "stop-requested") == 0) {
		stop_requested = 1;
		if (state == ST_WAITING) {
			state = ST_DONE;
		} else if (state == ST_BACKOFF) {
			t_restart = 0;
			will_restart = 0;
			write_exit();
			state = ST_DONE;
		}
		snprintf(reply, sizeof(reply), "ok\n");
	} else if (strcmp(line, "status") == 0) {
		char started[40] = "";
		if (ever_running)
			sup_format_time(started, &run_started_rt);
		snprintf(reply, sizeof(reply),
			 "{\"state\":\"%s\",\"pid\":%d,\"restart_count\":%d,\"health\":\"%s\",\"failing_streak\":%d,"
			 "\"started_at\":\"%s\",\"stop_requested\":%s}\n",
			 state_name(), (int)container_pid, restart_count, health_name(), failing_streak, started,
			 stop_requested ? "true" : "false");
	} else {
		snprintf(reply, sizeof(reply), "error unknown command %.64s\n", line);
	}
	// The reply fits the socket buffer of a fresh connection.
	(void)send(c->w.fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	ctl_drop(c);
}

static void ctl_read(struct ctl *c) {
	ssize_t n = recv(c->w.fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		ctl_drop(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	char *nl = memchr(c->buf, '\n', c->len);
	if (nl) {
		*nl = '\0';
		ctl_command(c, c->buf);
	} else if (n == 0 || c->len == sizeof(c->buf) - 1) {
		if (c->len > 0 && n == 0) {
			ctl_command(c, c->buf);
		} else {
			ctl_drop(c);
		}
	}
}

static void accept_ctl(void) {
	int fd = accept_conn(&ctl_l, "control connection");
	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CTLS; i++) {
		if (ctls[i] == NULL) {
			struct ctl *c = calloc(1, sizeof(*c));
			if (c == NULL)
				break;
			c->w.kind = W_CTL;
			c->w.fd = fd;
			ctls[i] = c;
			watch_set(&c->w, EPOLLIN, 0);
			return;
		}
	}
	close(fd);
}

// ---- setup ----

static int listen_unix(const char *name) {
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
	if (unlink(name) < 0 && errno != ENOENT)
		die("remove stale %s/%s: %s", rundir, name, strerror(errno));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind %s/%s: %s", rundir, name, strerror(errno));
	if (listen(fd, 16) < 0)
		die("listen %s/%s: %s", rundir, name, strerror(errno));
	return fd;
}

static void write_pidfile(void) {
	// "<pid> <start time in clock ticks since boot>": the start time tells
	// a live supervisor from a recycled pid.
	char stat[1024];
	unsigned long long start = 0;
	if (read_small("/proc/self/stat", stat, sizeof(stat)) > 0) {
		char *p = strrchr(stat, ')');
		// Fields after ')' start at 3 (state); starttime is field 22.
		for (int field = 2; p && field < 22; field++)
			p = strchr(p + 1, ' ');
		if (p)
			start = strtoull(p + 1, NULL, 10);
	}
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%d %llu\n", (int)getpid(), start);
	if (write_file_atomic("supervisor.pid", buf, (size_t)n) < 0)
		die("write %s/supervisor.pid", rundir);
}

static void finish(void) {
	if (health_pid > 0)
		(void)kill(-health_pid, SIGKILL);
	(void)unlink("attach.sock");
	(void)unlink("ctl.sock");
	if (conf.tty)
		(void)unlink("console.sock");
	(void)unlink("supervisor.pid");
	sup_log("supervisor exiting");
	_exit(0);
}

// drop_segment releases the resident pages of one read-only segment of the
// binary (see shed_startup_pages).
static int drop_segment(struct dl_phdr_info *info, size_t size, void *data) {
	(void)size;
	(void)data;
	long page = sysconf(_SC_PAGESIZE);
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
			continue;
		uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(page - 1);
		uintptr_t end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		if (madvise((void *)start, end - start, MADV_DONTNEED) < 0)
			sup_log("madvise: %s", strerror(errno));
	}
	return 1; // the first object is the executable itself: done
}

// shed_startup_pages (at the end of the setup, and again whenever the loop
// has been quiet for IDLE_SHED_MS): the binary is mostly the Go program the supervisor
// never runs; libc's start-up and our setup faulted in pages of its text and
// read-only data (in 64 KiB fault-around chunks). Those segments are
// file-backed and never written, so dropping them is safe: the pages the
// loop needs come back from the page cache on first use, and the rest stay
// out of our resident set.
static void shed_startup_pages(void) {
	(void)dl_iterate_phdr(drop_segment, NULL);
}

static long long min_deadline(long long a, long long b) {
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

static void update_interests(void) {
	int backpressure = 0;
	if (state != ST_EXITING)
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = clients[i];
			if (c && !c->dead && !c->closing && c->qlen - c->qoff > CLIENT_HIGH)
				backpressure = 1;
		}
	for (int i = 0; i < 2; i++)
		watch_set(&streams[i].w, backpressure ? 0 : EPOLLIN, 0);
	watch_set(&stdin_w, inlen > 0 ? EPOLLOUT : 0, 0);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = clients[i];
		if (c == NULL || c->dead)
			continue;
		uint32_t ev = 0;
		if (!c->hs)
			ev |= EPOLLIN;
		else if (!c->rd_eof && !(c->in && in_open && inlen == STDIN_CAP))
			ev |= EPOLLIN;
		if (c->qlen > c->qoff)
			ev |= EPOLLOUT;
		watch_set(&c->w, ev, 1);
	}
	uint32_t lev = t_listen ? 0 : EPOLLIN;
	watch_set(&attach_l, lev, 0);
	watch_set(&ctl_l, lev, 0);
	watch_set(&console_l, lev, 0);
}

static void sweep(void) {
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i] && clients[i]->dead) {
			free(clients[i]->q);
			free(clients[i]);
			clients[i] = NULL;
		}
	}
	for (int i = 0; i < MAX_CTLS; i++) {
		if (ctls[i] && ctls[i]->dead) {
			free(ctls[i]);
			ctls[i] = NULL;
		}
	}
}

static int live_clients(void) {
	int n = 0;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i] && !clients[i]->dead)
			n++;
	return n;
}

static void run_timers(void) {
	long long now = now_ms();
	if (t_listen && now >= t_listen)
		t_listen = 0;
	if (t_health_kill && now >= t_health_kill) {
		t_health_kill = 0;
		if (health_pid > 0) {
			health_timed_out = 1;
			(void)kill(-health_pid, SIGKILL);
		}
	}
	if (t_health_next && now >= t_health_next) {
		t_health_next = 0;
		if (state == ST_RUNNING && health_pid == 0)
			health_run();
	}
	if (t_shed && now >= t_shed) {
		t_shed = 0;
		shed_startup_pages();
	}
	if (t_restart && now >= t_restart) {
		t_restart = 0;
		if (state == ST_BACKOFF)
			start_container();
	}
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = clients[i];
		if (c && !c->dead && c->closing && now >= c->deadline)
			client_drop(c);
	}
}

static long long next_deadline(void) {
	long long d = 0;
	d = min_deadline(d, t_listen);
	d = min_deadline(d, t_health_kill);
	d = min_deadline(d, t_health_next);
	d = min_deadline(d, t_restart);
	d = min_deadline(d, t_drain);
	d = min_deadline(d, t_shed);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = clients[i];
		if (c && !c->dead && c->closing)
			d = min_deadline(d, c->deadline);
	}
	return d;
}

static void dispatch(struct watch *w, uint32_t ev) {
	if (w->fd < 0)
		return; // closed earlier in this batch
	switch (w->kind) {
	case W_SIGNAL:
		on_signal();
		break;
	case W_LISTEN_ATTACH:
		accept_client();
		break;
	case W_LISTEN_CTL:
		accept_ctl();
		break;
	case W_LISTEN_CONSOLE:
		console_accept();
		break;
	case W_CONSOLE:
		console_recv();
		break;
	case W_STREAM:
		(void)stream_read((struct stream *)w);
		break;
	case W_STDIN:
		stdin_flush();
		break;
	case W_PIDFD:
		watch_close(&pidfd_w);
		if (container_pid > 0)
			on_container_exit(0, 0);
		break;
	case W_CTL:
		ctl_read((struct ctl *)w);
		break;
	case W_STARTER:
		starter_read();
		break;
	case W_CLIENT: {
		struct client *c = (struct client *)w;
		if (ev & EPOLLOUT)
			client_flush(c);
		if (!c->dead && (ev & EPOLLIN))
			client_read(c);
		if (!c->dead && (ev & (EPOLLHUP | EPOLLERR)) && !(ev & EPOLLIN))
			client_drop(c);
		break;
	}
	}
}

static void supervise(void) {
	// Descriptors 0-2 are /dev/null (the engine spawns us so); make sure,
	// so that no descriptor of ours lands there and gets handed on.
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) < 0) {
			int n = open("/dev/null", O_RDWR);
			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
	}
	// Anything else inherited must not reach the callbacks.
	(void)syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
	umask(022); // what the callbacks and the container inherit, as Docker's containers have
	if (chdir(rundir) < 0)
		_exit(1);
	logfd = open("supervisor.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	(void)unsetenv(ENV_NAME); // the callbacks are berth too: they must not supervise

	int lockfd = open("supervisor.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (lockfd < 0)
		die("open %s/supervisor.lock: %s", rundir, strerror(errno));
	if (flock(lockfd, LOCK_EX | LOCK_NB) < 0)
		die("%s is supervised by another process", rundir);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		die("open /dev/null: %s", strerror(errno));
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		die("sigprocmask: %s", strerror(errno));
	sig_w.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig_w.fd < 0)
		die("signalfd: %s", strerror(errno));

	load_config();
	if (sup_logw_open(&logw, conf.log_path, conf.log_max_size, conf.log_max_file) < 0)
		die("open log %s: %s", conf.log_path, strerror(errno));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	watch_set(&sig_w, EPOLLIN, 0);
	attach_l.fd = listen_unix("attach.sock");
	ctl_l.fd = listen_unix("ctl.sock");
	if (conf.tty)
		console_l.fd = listen_unix("console.sock");
	in_open = conf.open_stdin;
	// Last: the engine takes the pid file as "ready, sockets listening".
	write_pidfile();
	// Spawn may wait on a pipe instead of polling for the pid file: its
	// write end closing says "ready".
	const char *ready = getenv("_BERTH_SUPERVISE_READY");
	if (ready) {
		int rfd = atoi(ready);
		if (rfd > 2)
			close(rfd);
		(void)unsetenv("_BERTH_SUPERVISE_READY");
	}
	sup_log("supervising %s", conf.id ? conf.id : rundir);

	state = ST_WAITING;
	if (conf.client_start) {
		const char *cfd = getenv("_BERTH_SUPERVISE_CLIENT");
		starter_w.fd = cfd ? atoi(cfd) : -1;
		if (starter_w.fd < 3 || fcntl(starter_w.fd, F_GETFD) < 0)
			die("client_start without a client socket (_BERTH_SUPERVISE_CLIENT)");
		(void)unsetenv("_BERTH_SUPERVISE_CLIENT");
		run_starting();
		watch_set(&starter_w, EPOLLIN, 0);
	} else if (!conf.wait_attach) {
		start_container();
	}
	shed_startup_pages();

	for (;;) {
		if (state == ST_EXITING) {
			int open_streams = streams[0].w.fd >= 0 || streams[1].w.fd >= 0;
			if (!open_streams || (t_drain && now_ms() >= t_drain))
				finish_run();
		}
		if (state == ST_DONE) {
			for (int i = 0; i < MAX_CLIENTS; i++)
				if (clients[i])
					client_end_run(clients[i], 1);
			if (live_clients() == 0 && cleanup_pid == 0)
				finish();
		}
		update_interests();
		long long d = next_deadline(), timeout = -1;
		if (d) {
			timeout = d - now_ms();
			if (timeout < 0)
				timeout = 0;
			if (timeout > INT_MAX)
				timeout = INT_MAX;
		}
		struct epoll_event evs[16];
		int n = epoll_wait(epfd, evs, 16, (int)timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++)
			dispatch(evs[i].data.ptr, evs[i].events);
		if (n > 0 || t_shed == 0)
			t_shed = now_ms() + IDLE_SHED_MS;
		sweep();
		run_timers();
	}
}

__attribute__((constructor)) static void berth_supervise(void) {
	const char *dir = getenv(ENV_NAME);
	if (dir == NULL || *dir == '\0')
		return;
	rundir = dir;
	supervise();
	_exit(0);
}
