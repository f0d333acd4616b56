// Declarations shared by the supervisor's C files (see package supervisor's
// doc comment for what the supervisor does and why it is C).
#ifndef BERTH_SUPERVISOR_H
#define BERTH_SUPERVISOR_H

#include <stddef.h>
#include <time.h>

// Docker splits log lines longer than this into several entries.
#define SUP_LOG_LINE_MAX 16384

struct sup_logw {
	int fd;
	const char *path;    // NULL: no log
	long long size;      // bytes in the current file
	long long max_size;  // rotate once the file holds at least this much; 0: never
	int max_file;        // files kept, the current one included
	char *buf;           // one encoded entry
	size_t cap;
	int failed;          // an error was reported already (report once)
};

// sup_log reports a supervisor-level problem to <dir>/supervisor.log.
void sup_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int sup_logw_open(struct sup_logw *w, const char *path, long long max_size, int max_file);
// sup_logw_write appends one json-file entry {"log":..,"stream":..,"time":..}.
void sup_logw_write(struct sup_logw *w, const char *stream, const char *data, size_t n, const struct timespec *ts);
void sup_logw_close(struct sup_logw *w);

// sup_json_escape writes s as the body of a JSON string (no quotes) exactly
// as Docker's json-file driver does; dst must hold 6*n bytes.
size_t sup_json_escape(char *dst, const char *s, size_t n);
// sup_format_time writes ts in UTC as Go's time.RFC3339Nano (trailing zeros
// of the fraction trimmed); dst must hold 40 bytes.
size_t sup_format_time(char *dst, const struct timespec *ts);
// sup_write_all writes all of buf to fd, retrying on EINTR and short writes.
int sup_write_all(int fd, const void *buf, size_t n);

#endif
