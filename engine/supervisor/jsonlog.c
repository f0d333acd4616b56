// The container log in Docker's json-file format, with Docker's rotation.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor.h"

int sup_write_all(int fd, const void *buf, size_t n) {
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static const char hexdig[] = "0123456789abcdef";

// utf8_rune decodes the sequence at s like Go's utf8.DecodeRune: it returns
// its length and stores the code point, or returns 1 with *r = -1 for an
// invalid or truncated sequence.
static size_t utf8_rune(const unsigned char *s, size_t n, long *r) {
	unsigned char b = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;
	long c;
	*r = -1;
	if (b < 0xc2)
		return 1; // continuation byte or overlong 2-byte lead
	if (b < 0xe0) {
		need = 1;
		c = b & 0x1f;
	} else if (b < 0xf0) {
		need = 2;
		c = b & 0x0f;
		if (b == 0xe0)
			lo = 0xa0; // overlong
		else if (b == 0xed)
			hi = 0x9f; // surrogates
	} else if (b < 0xf5) {
		need = 3;
		c = b & 0x07;
		if (b == 0xf0)
			lo = 0x90; // overlong
		else if (b == 0xf4)
			hi = 0x8f; // above U+10FFFF
	} else {
		return 1;
	}
	if (n < need + 1)
		return 1;
	for (size_t i = 1; i <= need; i++) {
		unsigned char x = s[i];
		if (i == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xbf))
			return 1;
		c = (c << 6) | (x & 0x3f);
	}
	*r = c;
	return need + 1;
}

size_t sup_json_escape(char *dst, const char *src, size_t n) {
	const unsigned char *s = (const unsigned char *)src;
	char *d = dst;
	size_t i = 0;
	while (i < n) {
		unsigned char b = s[i];
		if (b < 0x80) {
			if (b >= 0x20 && b != '\\' && b != '"' && b != '<' && b != '>' && b != '&') {
				*d++ = (char)b;
			} else if (b == '\\' || b == '"') {
				*d++ = '\\';
				*d++ = (char)b;
			} else if (b == '\n') {
				*d++ = '\\';
				*d++ = 'n';
			} else if (b == '\r') {
				*d++ = '\\';
				*d++ = 'r';
			} else {
				memcpy(d, "\\u00", 4);
				d[4] = hexdig[b >> 4];
				d[5] = hexdig[b & 0xf];
				d += 6;
			}
			i++;
			continue;
		}
		long r;
		size_t size = utf8_rune(s + i, n - i, &r);
		if (r < 0) {
			memcpy(d, "\\ufffd", 6);
			d += 6;
		} else if (r == 0x2028 || r == 0x2029) {
			memcpy(d, "\\u202", 5);
			d[5] = hexdig[r & 0xf];
			d += 6;
		} else {
			memcpy(d, s + i, size);
			d += size;
		}
		i += size;
	}
	return (size_t)(d - dst);
}

size_t sup_format_time(char *dst, const struct timespec *ts) {
	struct tm tm;
	time_t sec = ts->tv_sec;
	if (gmtime_r(&sec, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	int n = snprintf(dst, 40, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0)
		n = 0;
	long ns = ts->tv_nsec;
	if (ns > 0 && ns < 1000000000L) {
		char frac[10];
		snprintf(frac, sizeof(frac), "%09ld", ns);
		int len = 9;
		while (len > 0 && frac[len - 1] == '0')
			len--;
		dst[n++] = '.';
		memcpy(dst + n, frac, (size_t)len);
		n += len;
	}
	dst[n++] = 'Z';
	dst[n] = '\0';
	return (size_t)n;
}

static int open_log(const char *path, int trunc) {
	int fd;
	do {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (trunc ? O_TRUNC : 0), 0640);
	} while (fd < 0 && errno == EINTR);
	return fd;
}

int sup_logw_open(struct sup_logw *w, const char *path, long long max_size, int max_file) {
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (path == NULL || *path == '\0')
		return 0;
	w->path = path;
	w->max_size = max_size;
	w->max_file = max_file < 1 ? 1 : max_file;
	w->fd = open_log(path, 0);
	if (w->fd < 0)
		return -1;
	struct stat st;
	if (fstat(w->fd, &st) == 0)
		w->size = st.st_size;
	return 0;
}

// rotate keeps max_file files: path.(k-1) -> path.k, ..., path -> path.1;
// with max_file 1 the file just starts over. Errors are reported and the
// writer keeps the current file.
static void rotate(struct sup_logw *w) {
	if (w->max_file >= 2) {
		char from[PATH_MAX], to[PATH_MAX];
		for (int i = w->max_file - 1; i >= 1; i--) {
			if (i == 1)
				snprintf(from, sizeof(from), "%s", w->path);
			else
				snprintf(from, sizeof(from), "%s.%d", w->path, i - 1);
			snprintf(to, sizeof(to), "%s.%d", w->path, i);
			if (rename(from, to) < 0 && errno != ENOENT) {
				sup_log("rotate log %s to %s: %s", from, to, strerror(errno));
				return;
			}
		}
	}
	int fd = open_log(w->path, 1);
	if (fd < 0) {
		sup_log("reopen log %s after rotation: %s", w->path, strerror(errno));
		return;
	}
	close(w->fd);
	w->fd = fd;
	w->size = 0;
}

void sup_logw_write(struct sup_logw *w, const char *stream, const char *data, size_t n, const struct timespec *ts) {
	if (w->fd < 0 || n == 0)
		return;
	size_t need = 6 * n + 128;
	if (need > w->cap) {
		char *nb = realloc(w->buf, need);
		if (nb == NULL) {
			sup_log("log entry of %zu bytes: out of memory", n);
			return;
		}
		w->buf = nb;
		w->cap = need;
	}
	char *p = w->buf;
	memcpy(p, "{\"log\":\"", 8);
	p += 8;
	p += sup_json_escape(p, data, n);
	p += sprintf(p, "\",\"stream\":\"%s\",\"time\":\"", stream);
	p += sup_format_time(p, ts);
	memcpy(p, "\"}\n", 3);
	p += 3;
	size_t len = (size_t)(p - w->buf);

	if (w->max_size > 0 && w->size >= w->max_size)
		rotate(w);
	if (sup_write_all(w->fd, w->buf, len) < 0) {
		if (!w->failed)
			sup_log("write log %s: %s", w->path, strerror(errno));
		w->failed = 1;
		return;
	}
	w->failed = 0;
	w->size += (long long)len;
	// Give back the memory of an exceptionally escaped entry.
	if (w->cap > 32768) {
		free(w->buf);
		w->buf = NULL;
		w->cap = 0;
	}
}

void sup_logw_close(struct sup_logw *w) {
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->buf);
	w->buf = NULL;
	w->cap = 0;
}
