// Pre-runtime namespace entry for berth's container init.
//
// This constructor runs before the Go runtime starts (and so before it creates
// any thread). It does nothing unless the environment variable
// _BERTH_INITPIPE names a file descriptor: then this process is a container
// init (or exec) that berth-runc just spawned, and the parent sends it, over
// that descriptor, the namespaces to join and to create. Joining a user or
// mount namespace with setns(2) is only possible for a single-threaded
// process, which a Go program never is once main runs; creating the user
// namespace first and then every other namespace inside it needs the same
// single-threaded moment. See package nsenter's doc comment for the protocol.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "cinit.h"
#include "initsock.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define MAX_JOINS 16
#define MAX_MSG (64 * 1024)

// Messages to the parent: one type byte, a 4-byte little-endian length, payload.
#define MSG_PID 'P'    // payload: int32 pid of the process that continues into Go
#define MSG_ERR 'E'    // payload: error text
#define MSG_USERNS 'U' // no payload: user namespace made, write my id maps

static int pipefd = -1;

#define MAX_PLAN (64 * 1024 * 1024)

static void bail(const char *fmt, ...) {
	char buf[1024];
	va_list ap;
	int saved = errno;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 128, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (saved)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(saved));
	initsock_send(pipefd, MSG_ERR, buf, (uint32_t)n);
	_exit(1);
}

// run_cinit reads the plan ('X' message) and runs the C init; it never
// returns.
static void run_cinit(void) {
	char hdr[5];
	uint32_t n;
	initsock_read(pipefd, hdr, 5);
	memcpy(&n, hdr + 1, 4);
	if (hdr[0] != 'X' || n > MAX_PLAN)
		bail("expected the init plan");
	char *plan = malloc(n ? n : 1);
	if (!plan)
		bail("malloc");
	initsock_read(pipefd, plan, n);
	berth_cinit(pipefd, plan, n);
}

struct join {
	int flag;
	int fd;
	char *path;
};

static const char *nsname(int flag) {
	switch (flag) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mount";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "network";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return "unknown";
}

static void write_file(const char *path, const char *data) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		bail("open %s", path);
	size_t n = strlen(data);
	if (write(fd, data, n) != (ssize_t)n)
		bail("write %s", path);
	close(fd);
}

__attribute__((constructor)) static void berth_nsenter(void) {
	const char *env = getenv("_BERTH_INITPIPE");
	if (env == NULL || *env == '\0')
		return;
	pipefd = atoi(env);
	if (pipefd <= 2)
		return;
	// The init socket is the last descriptor berth-runc passes on purpose;
	// anything above it was inherited by accident and must not reach the
	// container (CVE-2024-21626).
	syscall(SYS_close_range, (unsigned int)pipefd + 1, ~0U, 0);

	// Nothing in this process may be ptraced or have its memory read by the
	// container before it execs the container's program (CVE-2016-9962).
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		bail("prctl(PR_SET_DUMPABLE)");

	// The length comes with the cgroup "tasks" files to join, if any
	// (SCM_RIGHTS on the first bytes of the stream).
	uint32_t len;
	int cgfds[INITSOCK_MAX_FDS];
	int ncgfds = initsock_recv_fds(pipefd, &len, 4, cgfds);
	if (ncgfds < 0)
		bail("too many cgroup files");
	// Join the container's cgroups first, still single-threaded and in
	// the host's namespaces: writing "0" to a v1 tasks file moves only
	// this thread (so, now, the whole process) and spares the kernel's
	// global threadgroup lock and the RCU grace period its writers wait
	// for. Everything this process forks or the Go runtime starts later
	// is born in the cgroups.
	if (join_cgroups(cgfds, ncgfds) < 0)
		bail("join cgroup");
	if (len == 0 || len > MAX_MSG)
		bail("bad nsenter message length %u", len);
	char *msg = malloc(len + 1);
	if (!msg)
		bail("malloc");
	initsock_read(pipefd, msg, len);
	msg[len] = '\0';

	// Lines: "clone <hex>", "join <hex> <path>", "timens <offsets line>", "fork".
	unsigned long cloneflags = 0;
	struct join joins[MAX_JOINS];
	int njoins = 0, mustfork = 0, cinit = 0;
	char timens[512] = "";
	for (char *save = NULL, *line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "clone ", 6) == 0) {
			cloneflags = strtoul(line + 6, NULL, 16);
		} else if (strncmp(line, "join ", 5) == 0) {
			if (njoins == MAX_JOINS)
				bail("too many namespaces to join");
			char *end;
			joins[njoins].flag = (int)strtoul(line + 5, &end, 16);
			joins[njoins].path = end + 1;
			njoins++;
		} else if (strncmp(line, "timens ", 7) == 0) {
			size_t n = strlen(timens);
			snprintf(timens + n, sizeof(timens) - n, "%s\n", line + 7);
		} else if (strcmp(line, "fork") == 0) {
			mustfork = 1;
		} else if (strcmp(line, "cinit") == 0) {
			cinit = 1;
		} else {
			bail("unknown nsenter directive %.64s", line);
		}
	}

	// Open every namespace first: once we have joined a mount namespace the
	// paths would resolve somewhere else.
	for (int i = 0; i < njoins; i++) {
		joins[i].fd = open(joins[i].path, O_RDONLY | O_CLOEXEC);
		if (joins[i].fd < 0)
			bail("open %s namespace %s", nsname(joins[i].flag), joins[i].path);
	}
	// Namespaces owned by another user namespace than the one joined (a
	// container's network namespace pinned by the engine on the host)
	// can only be joined before it, with the caller's privileges;
	// namespaces owned by it (a rootless caller's) only after, with the
	// privileges it gives. So: first every other namespace we may join
	// now, then the user namespace, then the ones refused before.
	int hasuser = 0;
	for (int i = 0; i < njoins; i++)
		hasuser |= joins[i].flag == CLONE_NEWUSER;
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < njoins; i++) {
			if (joins[i].fd < 0)
				continue;
			int isuser = joins[i].flag == CLONE_NEWUSER;
			if ((pass == 1) != isuser)
				continue;
			if (setns(joins[i].fd, joins[i].flag) < 0) {
				if (pass == 0 && hasuser && errno == EPERM)
					continue; // try again inside the user namespace
				bail("join %s namespace %s", nsname(joins[i].flag), joins[i].path);
			}
			close(joins[i].fd);
			joins[i].fd = -1;
			if (joins[i].flag == CLONE_NEWPID || joins[i].flag == CLONE_NEWTIME)
				mustfork = 1;
			if (isuser) {
				if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
					bail("become root in the joined user namespace");
			}
		}
	}

	if (cloneflags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			bail("create user namespace");
		// The parent writes uid_map and gid_map for us, then answers.
		initsock_send(pipefd, MSG_USERNS, NULL, 0);
		char ack;
		initsock_read(pipefd, &ack, 1);
		if (ack != 'u')
			_exit(1);
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			bail("prctl(PR_SET_DUMPABLE)");
		// Become root of the new namespace when root is mapped (it
		// usually is); if it is not, we keep the namespace's full
		// capabilities as the unmapped id.
		if (setresgid(0, 0, 0) == 0)
			(void)setresuid(0, 0, 0);
	}
	unsigned long rest = cloneflags & ~((unsigned long)CLONE_NEWUSER | CLONE_NEWPID);
	if (rest && unshare((int)rest) < 0) {
		int saved = errno;
		for (unsigned long f = 1; f; f <<= 1)
			if ((rest & f) && unshare((int)f) < 0)
				bail("create %s namespace", nsname((int)f));
		errno = saved;
		bail("create namespaces %#lx", rest);
	}
	if (cloneflags & CLONE_NEWTIME) {
		if (timens[0])
			write_file("/proc/self/timens_offsets", timens);
		mustfork = 1;
	}
	if (cloneflags & CLONE_NEWPID)
		mustfork = 1;

	int32_t pid = getpid();
	if (mustfork) {
		// CLONE_PARENT: the child becomes berth-runc's own child, so the
		// runtime can wait for it; this intermediate process then exits.
		long child = syscall(SYS_clone, (unsigned long)CLONE_PARENT | SIGCHLD | (cloneflags & CLONE_NEWPID), 0, 0, 0, 0);
		if (child < 0)
			bail("clone container init");
		if (child > 0) {
			pid = (int32_t)child;
			initsock_send(pipefd, MSG_PID, &pid, 4);
			_exit(0);
		}
		// Child: continue into the Go runtime, as the container's init,
		// or run the C init.
		free(msg);
		if (cinit)
			run_cinit();
		return;
	}
	initsock_send(pipefd, MSG_PID, &pid, 4);
	free(msg);
	if (cinit)
		run_cinit();
}
