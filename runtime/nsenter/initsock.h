// The init socket, for both C files of the package (nsenter.c and cinit.c):
// its messages are one type byte, a 4-byte little-endian length and the
// payload (see package nsenter's doc comment). cgo compiles each .c file on
// its own, so these are static: each file has its own copy. On a read or
// write that fails the runtime has gone away, and there is nobody left to
// report to: they _exit(1).
#ifndef BERTH_INITSOCK_H
#define BERTH_INITSOCK_H
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Descriptors one message may bring: the container's v1 cgroup "tasks" files.
#define INITSOCK_MAX_FDS 32

static void initsock_write(int fd, const void *buf, size_t n) {
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(1);
		p += w;
		n -= (size_t)w;
	}
}

static void initsock_read(int fd, void *buf, size_t n) {
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(1);
		p += r;
		n -= (size_t)r;
	}
}

static void initsock_send(int fd, char type, const void *payload, uint32_t len) {
	char hdr[5];
	hdr[0] = type;
	memcpy(hdr + 1, &len, 4);
	initsock_write(fd, hdr, 5);
	if (len)
		initsock_write(fd, payload, len);
}

// initsock_recv_fds reads n bytes into buf and the descriptors sent with
// the first of them into fds (INITSOCK_MAX_FDS at most), and returns how
// many came; -1 if more were sent than fit.
static int initsock_recv_fds(int fd, void *buf, size_t n, int *fds) {
	union {
		char buf[CMSG_SPACE(sizeof(int) * INITSOCK_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = buf, .iov_len = n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
	ssize_t r;
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		_exit(1);
	int nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < cnt && nfds < INITSOCK_MAX_FDS; i++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (mh.msg_flags & MSG_CTRUNC)
		return -1;
	if ((size_t)r < n)
		initsock_read(fd, (char *)buf + r, n - (size_t)r);
	return nfds;
}

// join_cgroups writes "0" to each of the v1 cgroup "tasks" files in fds,
// which moves this single-threaded process into the cgroups, and closes
// them. -1 (errno set) if a write fails.
static int join_cgroups(const int *fds, int n) {
	for (int i = 0; i < n; i++) {
		if (write(fds[i], "0", 1) != 1)
			return -1;
		close(fds[i]);
	}
	return 0;
}

#endif
