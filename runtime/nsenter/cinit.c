// The C init: runs a container's init from a plan sent by berth-runc, without
// ever starting the Go runtime (see runtime/cinit_linux.go for what the plan
// holds, when it is used and its wire format). It executes the steps in
// order and execs the user's program; errors go back to berth-runc as an 'E'
// message while the init socket is open, and to stderr with exit status
// 126/127 after the container was started, as the Go init does.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cinit.h"
#include "initsock.h"

#ifndef MOUNT_ATTR_RDONLY
struct mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef KEYCTL_JOIN_SESSION_KEYRING
#define KEYCTL_JOIN_SESSION_KEYRING 1
#endif

// Ops (runtime/rootfs.StepOp and runtime's plan* constants).
enum {
	OP_MOUNT = 1,
	OP_OPEN_ROOT,
	OP_MOUNT_IN,
	OP_SYMLINK_IN,
	OP_MKNOD_IN,
	OP_MKDIR_IN,
	OP_PIVOT,
	OP_REMOUNT,
	OP_READONLY,
	OP_MASK,
	OP_WAIT_CGROUP = 32,
	OP_HOOKS,
	OP_HOSTNAME,
	OP_DOMAINNAME,
	OP_WRITE_FILE,
	OP_KEYRING,
	OP_RLIMIT,
	OP_READY,
	OP_EXEC,
};

enum {
	B_BIND = 1,
	B_KEEP_MODE = 2,
	B_CHECK_PROCSYS = 4,
	B_NEED_DIR = 8,
	B_PROC_SOURCE = 16,
	B_REPLACE = 32,
	B_RETRY_BUSY = 64,
	B_RECATTR = 128,
	B_CGROUPNS = 256,
};

static int sock = -1;   // init socket, -1 once closed
static int rootfd = -1; // O_PATH handle on the rootfs bind mount

// errtext renders errno as Go does: strerror with a lower-case first letter.
static const char *errtext(int e) {
	static char buf[128];
	snprintf(buf, sizeof(buf), "%s", strerror(e));
	buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

// failv reports an error and exits: to the runtime while the socket is
// open, else on stderr with 126 for a program that cannot be executed and
// 127 otherwise. err 0 adds no errno text.
static void failv(int err, const char *fmt, va_list ap) {
	char buf[4096];
	int n = vsnprintf(buf, sizeof(buf) - 160, fmt, ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 160)
		n = (int)sizeof(buf) - 160;
	if (err)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", errtext(err));
	if (sock >= 0) {
		initsock_send(sock, 'E', buf, (uint32_t)n);
		_exit(1);
	}
	char out[4200];
	int m = snprintf(out, sizeof(out), "berth-runc: %s\n", buf);
	if (write(2, out, (size_t)m) < 0) {
	}
	_exit(err == EACCES || err == ENOEXEC || err == EISDIR || err == EPERM ? 126 : 127);
}

__attribute__((format(printf, 2, 3))) static void fail(int err, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	failv(err, fmt, ap);
	va_end(ap);
}

// Errors of a step: the step's own prefix, then what went wrong.
static const char *prefix;
__attribute__((format(printf, 2, 3))) static void sfail(int err, const char *fmt, ...) {
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (prefix && *prefix)
		fail(err, "%s: %s", prefix, buf);
	fail(err, "%s", buf);
}

// recv_cgroup reads the 'G' message with the descriptors sent with it
// (*nfds of them) and returns its type.
static char recv_cgroup(int *fds, int *nfds) {
	char hdr[5];
	*nfds = initsock_recv_fds(sock, hdr, sizeof(hdr), fds);
	if (*nfds < 0)
		fail(0, "too many cgroup files");
	uint32_t len;
	memcpy(&len, hdr + 1, 4);
	char skip[256];
	while (len > 0) {
		size_t k = len < sizeof(skip) ? len : sizeof(skip);
		initsock_read(sock, skip, k);
		len -= (uint32_t)k;
	}
	return hdr[0];
}

// ---- plan decoding

struct cur {
	const char *p, *end;
};

static void need(struct cur *c, size_t n) {
	if ((size_t)(c->end - c->p) < n)
		fail(0, "berth-runc init: truncated plan");
}
static uint8_t rd8(struct cur *c) {
	need(c, 1);
	return (uint8_t)*c->p++;
}
static uint32_t rd32(struct cur *c) {
	uint32_t v;
	need(c, 4);
	memcpy(&v, c->p, 4);
	c->p += 4;
	return v;
}
static uint64_t rd64(struct cur *c) {
	uint64_t v;
	need(c, 8);
	memcpy(&v, c->p, 8);
	c->p += 8;
	return v;
}
static const char *rdstr(struct cur *c) {
	uint32_t n = rd32(c);
	need(c, (size_t)n + 1);
	const char *s = c->p;
	if (s[n] != '\0')
		fail(0, "berth-runc init: bad plan string");
	c->p += n + 1;
	return s;
}

struct rec {
	uint32_t bits;
	uint64_t a, b, c;
	struct mount_attr attr;
	uint32_t nprops;
	const char *props; // nprops little-endian u64
	const char *source, *fstype, *dest, *data, *target, *err;
};

static void rdrec(struct cur *c, struct rec *r) {
	r->bits = rd32(c);
	r->a = rd64(c);
	r->b = rd64(c);
	r->c = rd64(c);
	memset(&r->attr, 0, sizeof(r->attr));
	r->attr.attr_set = rd64(c);
	r->attr.attr_clr = rd64(c);
	r->attr.propagation = rd64(c);
	r->nprops = rd32(c);
	need(c, (size_t)r->nprops * 8);
	r->props = c->p;
	c->p += (size_t)r->nprops * 8;
	r->source = rdstr(c);
	r->fstype = rdstr(c);
	r->dest = rdstr(c);
	r->data = rdstr(c);
	r->target = rdstr(c);
	r->err = rdstr(c);
}

// ---- paths inside the root

static void procfd(char *buf, size_t n, int fd) {
	snprintf(buf, n, "/proc/self/fd/%d", fd);
}

// in_root opens path (absolute, inside the container) relative to the root
// handle; no lookup can leave the root or cross a magic link.
static int in_root(const char *path, int flags) {
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	while (*path == '/')
		path++;
	if (*path == '\0')
		path = ".";
	int fd;
	do
		fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd;
}

// secure_join resolves the symlinks of path inside the root the way the
// container will see them (an absolute link is taken relative to the root,
// ".." stops at the root) and writes the result, a clean absolute path
// without symlinks up to its first missing component, to out. Like
// securejoin.SecureJoin; every later use of the result still goes through
// in_root, so a rootfs changed meanwhile cannot lead out of the root.
static void secure_join(const char *path, char *out, size_t outsz) {
	char rest[PATH_MAX * 2];
	char res[PATH_MAX] = "";
	size_t rl = 0;
	int hops = 0;
	int missing = 0; // a component is missing: the rest is taken literally
	snprintf(rest, sizeof(rest), "%s", path);
	char *p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *comp = p;
		char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!missing && n > NAME_MAX)
			sfail(ENAMETOOLONG, "resolve %s in rootfs", path);
		p += n;
		if (n == 1 && comp[0] == '.')
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			char *s = strrchr(res, '/');
			if (s) {
				*s = '\0';
				rl = (size_t)(s - res);
			}
			continue;
		}
		if (rl + 1 + n >= sizeof(res))
			sfail(ENAMETOOLONG, "resolve %s in rootfs", path);
		size_t prev = rl;
		res[rl] = '/';
		memcpy(res + rl + 1, comp, n);
		rl += 1 + n;
		res[rl] = '\0';
		if (missing)
			continue;
		int fd = in_root(res, O_PATH | O_NOFOLLOW);
		if (fd < 0) {
			if (errno == ENOENT || errno == ENOTDIR) {
				missing = 1;
				continue;
			}
			sfail(errno, "resolve %s in rootfs", path);
		}
		struct stat st;
		if (fstat(fd, &st) < 0)
			sfail(errno, "resolve %s in rootfs", path);
		if (!S_ISLNK(st.st_mode)) {
			close(fd);
			continue;
		}
		if (++hops > 255)
			sfail(ELOOP, "resolve %s in rootfs", path);
		char link[PATH_MAX];
		ssize_t ln = readlinkat(fd, "", link, sizeof(link) - 1);
		close(fd);
		if (ln < 0)
			sfail(errno, "resolve %s in rootfs", path);
		link[ln] = '\0';
		res[prev] = '\0';
		rl = prev;
		if (link[0] == '/') {
			res[0] = '\0';
			rl = 0;
		}
		char tmp[PATH_MAX * 2];
		if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", link, p) >= sizeof(tmp))
			sfail(ENAMETOOLONG, "resolve %s in rootfs", path);
		snprintf(rest, sizeof(rest), "%s", tmp);
		p = rest;
	}
	if (rl == 0)
		snprintf(out, outsz, "/");
	else
		snprintf(out, outsz, "%s", res);
}

// mkdir_all creates the directory path (resolved, inside the root) and its
// parents, one confined lookup per component, and returns an O_PATH handle.
static int mkdir_all(const char *path) {
	int fd = in_root(path, O_PATH | O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	size_t len = strlen(buf);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char save = buf[i];
		buf[i] = '\0';
		fd = in_root(buf, O_PATH | O_DIRECTORY);
		if (fd < 0 && errno == ENOENT) {
			char *slash = strrchr(buf, '/');
			*slash = '\0';
			int parent = in_root(buf[0] ? buf : "/", O_PATH | O_DIRECTORY);
			*slash = '/';
			if (parent < 0)
				return -1;
			if (mkdirat(parent, slash + 1, 0755) < 0 && errno != EEXIST) {
				int e = errno;
				close(parent);
				errno = e;
				return -1;
			}
			close(parent);
			fd = in_root(buf, O_PATH | O_DIRECTORY);
		}
		buf[i] = save;
		if (fd < 0)
			return -1;
		if (save != '\0')
			close(fd);
	}
	return fd;
}

static void split(const char *path, char *dir, char *base) {
	const char *s = strrchr(path, '/');
	size_t n = (size_t)(s - path);
	if (n == 0) {
		strcpy(dir, "/");
	} else {
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	strcpy(base, s + 1);
}

// create_file_at creates an empty file name in dir (keeping an existing
// one) and returns an O_PATH handle on it, refusing a symlink.
static int create_file_at(int dir, const char *name, mode_t mode) {
	int fd = openat(dir, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_RDONLY | O_CLOEXEC, mode);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		return -1;
	fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISLNK(st.st_mode))
		sfail(0, "%s appeared as a symlink: refusing to mount on it", name);
	return fd;
}

// check_procsys refuses a destination on or under /proc or /sys that
// passes through a symlink or, for proc and sysfs, is not a directory.
static void check_procsys(const char *dest, int needdir) {
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", dest);
	int cur = dup(rootfd);
	char *p = buf + 1, *comp;
	while ((comp = strsep(&p, "/")) != NULL) {
		if (!*comp)
			continue;
		int last = p == NULL;
		int fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			break;
		if (fd < 0)
			sfail(errno, "check %s", dest);
		close(cur);
		cur = fd;
		struct stat st;
		if (fstat(fd, &st) < 0)
			sfail(errno, "check %s", dest);
		char shown[PATH_MAX];
		snprintf(shown, sizeof(shown), "%.*s", (int)(comp + strlen(comp) - buf), dest);
		if (S_ISLNK(st.st_mode)) {
			char link[PATH_MAX];
			ssize_t n = readlinkat(fd, "", link, sizeof(link) - 1);
			link[n < 0 ? 0 : n] = '\0';
			sfail(0, "%s in the rootfs is a symlink (to \"%s\"): refusing to mount %s through it", shown, link, dest);
		}
		if (!S_ISDIR(st.st_mode) && (!last || needdir))
			sfail(0, "%s in the rootfs is not a directory: %s must be mounted on an ordinary directory", shown,
			      needdir ? "proc or sysfs" : "bind");
	}
	close(cur);
}

static int is_mount_root(int fd) {
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
		sfail(errno, "statx");
	if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return 1;
	return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

static void op_mount_in(struct rec *r) {
	const char *dest = r->dest;
	if (r->bits & B_CHECK_PROCSYS)
		check_procsys(dest, r->bits & B_NEED_DIR);
	if (r->bits & B_PROC_SOURCE) {
		struct statfs sfs;
		if (statfs(r->source, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
			sfail(0, "only a procfs may be mounted on /proc");
	}
	int wantdir = 1;
	if (r->bits & B_BIND) {
		struct stat st;
		if (stat(r->source, &st) < 0)
			sfail(errno, "bind source: stat %s", r->source);
		wantdir = S_ISDIR(st.st_mode);
	}
	char path[PATH_MAX];
	secure_join(dest, path, sizeof(path));
	if (strcmp(path, "/") == 0)
		sfail(0, "destination %s resolves to the container's root", dest);
	int existed = 1;
	int dst = in_root(path, O_PATH);
	if (dst < 0) {
		if (errno != ENOENT)
			sfail(errno, "open destination %s", path);
		existed = 0;
		if (wantdir) {
			dst = mkdir_all(path);
			if (dst < 0)
				sfail(errno, "create destination %s", path);
		} else {
			char dir[PATH_MAX], base[NAME_MAX + 1];
			split(path, dir, base);
			int parent = mkdir_all(dir);
			if (parent < 0)
				sfail(errno, "create parent of destination %s", path);
			dst = create_file_at(parent, base, 0644);
			if (dst < 0)
				sfail(errno, "create destination %s", path);
			close(parent);
		}
	}
	mode_t origmode = 0;
	int setmode = 0;
	if (strcmp(r->fstype, "tmpfs") == 0) {
		struct stat st;
		if (fstat(dst, &st) < 0)
			sfail(errno, "stat destination");
		origmode = st.st_mode & 07777;
		setmode = existed && (r->bits & B_KEEP_MODE);
	}
	char fdp[64];
	procfd(fdp, sizeof(fdp), dst);
	if (mount(r->source, fdp, r->fstype[0] ? r->fstype : NULL, (unsigned long)r->a, r->data[0] ? r->data : NULL) < 0)
		sfail(errno, "mount");
	close(dst);
	int mnt = in_root(path, O_PATH);
	if (mnt < 0)
		sfail(errno, "reopen %s after mount", path);
	if (!is_mount_root(mnt))
		sfail(0, "%s is not a mount point after mounting on it: path changed during mount", path);
	procfd(fdp, sizeof(fdp), mnt);
	if (r->b && mount("", fdp, NULL, (unsigned long)r->b, NULL) < 0)
		sfail(errno, "remount with flags %#lx", (unsigned long)r->b);
	if (setmode && chmod(fdp, origmode) < 0)
		sfail(errno, "chmod tmpfs to %#o", origmode);
	for (uint32_t i = 0; i < r->nprops; i++) {
		uint64_t f;
		memcpy(&f, r->props + 8 * i, 8);
		if (mount("", fdp, NULL, (unsigned long)f, NULL) < 0)
			sfail(errno, "set propagation %#lx", (unsigned long)f);
	}
	if (r->bits & B_RECATTR) {
		if (syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &r->attr, sizeof(r->attr)) < 0)
			sfail(errno, "mount_setattr (recursive options)");
	}
	close(mnt);
}

static void op_symlink_in(struct rec *r) {
	char path[PATH_MAX];
	secure_join(r->dest, path, sizeof(path));
	int dir = mkdir_all(path);
	if (dir < 0)
		sfail(errno, "create %s", r->dest);
	const char *name = r->data;
	if (r->bits & B_REPLACE) {
		int e = unlinkat(dir, name, 0);
		if (e < 0 && errno == EISDIR)
			e = unlinkat(dir, name, AT_REMOVEDIR);
		if (e < 0 && errno != ENOENT)
			sfail(errno, "remove %s/%s", r->dest, name);
		if (symlinkat(r->target, dir, name) < 0)
			sfail(errno, "symlink");
	} else if (symlinkat(r->target, dir, name) < 0 && errno != EEXIST) {
		sfail(errno, "symlink");
	}
	close(dir);
}

static void bind_device(int dir, const char *name, const char *host) {
	int f = create_file_at(dir, name, 0);
	if (f < 0)
		sfail(errno, "create bind target");
	char fdp[64];
	procfd(fdp, sizeof(fdp), f);
	if (mount(host, fdp, NULL, MS_BIND, NULL) < 0)
		sfail(errno, "bind host node %s", host);
	close(f);
}

static void op_mknod_in(struct rec *r) {
	char path[PATH_MAX], dirp[PATH_MAX], base[NAME_MAX + 1];
	secure_join(r->dest, path, sizeof(path));
	if (strcmp(path, "/") == 0)
		sfail(0, "path resolves to the container's root");
	split(path, dirp, base);
	int dir = mkdir_all(dirp);
	if (dir < 0)
		sfail(errno, "create parent directory");
	if (mknodat(dir, base, (mode_t)r->a, (dev_t)r->b) < 0) {
		if (errno == EEXIST) {
			close(dir);
			return;
		}
		if (errno == EPERM) {
			bind_device(dir, base, r->source);
			close(dir);
			return;
		}
		sfail(errno, "mknod");
	}
	int fd = openat(dir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		sfail(errno, "open new node");
	uid_t uid = (uid_t)(r->c >> 32);
	gid_t gid = (gid_t)(r->c & 0xffffffff);
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		sfail(errno, "chown %u:%u", uid, gid);
	char fdp[64];
	procfd(fdp, sizeof(fdp), fd);
	if (chmod(fdp, (mode_t)r->a & 07777) < 0)
		sfail(errno, "chmod %#o", (unsigned)r->a & 07777);
	close(fd);
	close(dir);
}

static void op_pivot(struct rec *r) {
	int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0)
		sfail(errno, "open old root");
	int newroot = open(r->dest, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (newroot < 0)
		sfail(errno, "open new root %s", r->dest);
	if (fchdir(newroot) < 0)
		sfail(errno, "chdir to new root");
	prefix = "";
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		sfail(errno, "pivot_root %s", r->dest);
	if (fchdir(oldroot) < 0)
		sfail(errno, "chdir to old root");
	if (mount("", ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		sfail(errno, "make old root rslave");
	if (umount2(".", MNT_DETACH) < 0)
		sfail(errno, "detach old root");
	if (chdir("/") < 0)
		sfail(errno, "chdir to new /");
	close(oldroot);
	close(newroot);
	if (rootfd >= 0) {
		close(rootfd);
		rootfd = -1;
	}
}

static void op_remount(struct rec *r) {
	for (int i = 0;; i++) {
		if (mount("", r->dest, NULL, (unsigned long)r->a, NULL) == 0)
			return;
		if (errno != EBUSY || !(r->bits & B_RETRY_BUSY) || i == 4)
			sfail(errno, "remount");
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void op_readonly(struct rec *r) {
	if (mount(r->dest, r->dest, NULL, MS_BIND | MS_REC, NULL) < 0) {
		if (errno == ENOENT)
			return;
		sfail(errno, "bind onto itself");
	}
	struct statfs sfs;
	if (statfs(r->dest, &sfs) < 0)
		sfail(errno, "statfs");
	unsigned long keep = 0;
	if (sfs.f_flags & ST_NOSUID)
		keep |= MS_NOSUID;
	if (sfs.f_flags & ST_NODEV)
		keep |= MS_NODEV;
	if (sfs.f_flags & ST_NOEXEC)
		keep |= MS_NOEXEC;
	if (mount("", r->dest, NULL, keep | MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		sfail(errno, "remount read-only");
}

static int devnull = -1;
static char nullsrc[64];

static void op_mask(struct rec *r) {
	if (devnull < 0) {
		const char *saved = prefix;
		prefix = "masked paths";
		devnull = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (devnull < 0)
			sfail(errno, "open /dev/null");
		struct stat st;
		if (fstat(devnull, &st) < 0)
			sfail(errno, "stat /dev/null");
		if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
			sfail(0, "/dev/null is not the null device (mode %#o, device %u:%u)", st.st_mode, major(st.st_rdev),
			      minor(st.st_rdev));
		struct statfs sfs;
		if (statfs("/proc", &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC)
			procfd(nullsrc, sizeof(nullsrc), devnull);
		else
			strcpy(nullsrc, "/dev/null");
		prefix = saved;
	}
	int e = mount(nullsrc, r->dest, NULL, MS_BIND, NULL);
	if (e < 0 && errno == ENOTDIR)
		e = mount("tmpfs", r->dest, "tmpfs", MS_RDONLY, NULL);
	if (e < 0 && errno != ENOENT)
		sfail(errno, "mount");
}

static void write_file(const char *path, const char *data) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		sfail(errno, "open %s", path);
	size_t n = strlen(data);
	if (write(fd, data, n) != (ssize_t)n)
		sfail(errno, "write %s", path);
	close(fd);
}

static void trace(const char *phase);

static void sig_exit(int sig) {
	// As the Go runtime does for a signal nobody asked for: die of it,
	// or, as pid 1 of a namespace that ignores it, exit 2.
	signal(sig, SIG_DFL);
	raise(sig);
	_exit(2);
}

// ---- the process

static void op_exec(struct cur *c) {
	uint32_t argc = rd32(c);
	if (argc == 0 || argc > 1 << 20)
		fail(0, "process.args must not be empty");
	char **argv = calloc(argc + 1, sizeof(char *));
	for (uint32_t i = 0; i < argc; i++)
		argv[i] = (char *)rdstr(c);
	uint32_t envc = rd32(c);
	if (envc > 1 << 20)
		fail(0, "berth-runc init: bad plan");
	char **envp = calloc(envc + 1, sizeof(char *));
	for (uint32_t i = 0; i < envc; i++)
		envp[i] = (char *)rdstr(c);
	const char *cwd = rdstr(c);
	const char *warnings = rdstr(c);
	uint32_t uid = rd32(c), gid = rd32(c), ngroups = rd32(c);
	if (ngroups > 65536)
		fail(0, "berth-runc init: bad plan");
	gid_t *groups = calloc(ngroups + 1, sizeof(gid_t));
	for (uint32_t i = 0; i < ngroups; i++)
		groups[i] = rd32(c);
	uint32_t hascaps = rd32(c);
	uint64_t bounding = rd64(c), effective = rd64(c), inheritable = rd64(c), permitted = rd64(c), ambient = rd64(c);
	uint32_t lastcap = rd32(c), nnp = rd32(c), umaskv = rd32(c);
	uint32_t sflags = rd32(c), nins = rd32(c);
	need(c, (size_t)nins * 8);
	struct sock_filter *ins = NULL;
	if (nins) {
		ins = calloc(nins, sizeof(*ins));
		for (uint32_t i = 0; i < nins; i++) {
			memcpy(&ins[i].code, c->p, 2);
			ins[i].jt = (uint8_t)c->p[2];
			ins[i].jf = (uint8_t)c->p[3];
			memcpy(&ins[i].k, c->p + 4, 4);
			c->p += 8;
		}
	}

	// lookPath: a name without a slash is searched in the container's PATH.
	const char *path = argv[0];
	char found[PATH_MAX];
	if (!strchr(argv[0], '/')) {
		const char *pathenv = NULL;
		for (uint32_t i = 0; i < envc; i++)
			if (strncmp(envp[i], "PATH=", 5) == 0)
				pathenv = envp[i] + 5;
		if (!pathenv || !*pathenv)
			pathenv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
		path = NULL;
		for (const char *d = pathenv;;) {
			const char *e = strchr(d, ':');
			size_t n = e ? (size_t)(e - d) : strlen(d);
			if (n == 0)
				snprintf(found, sizeof(found), "%s", argv[0]);
			else
				snprintf(found, sizeof(found), "%.*s/%s", (int)n, d, argv[0]);
			struct stat st;
			if (stat(found, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
				path = found;
				break;
			}
			if (!e)
				break;
			d = e + 1;
		}
		if (!path)
			fail(0, "exec: \"%s\": executable file not found in $PATH", argv[0]);
	}
	if (*cwd && *cwd != '/')
		fail(0, "process.cwd \"%s\" must be an absolute path", cwd);
	if (*cwd) {
		if (chdir(cwd) < 0)
			fail(errno, "process.cwd %s", cwd);
		// The cwd must be inside the container's root (CVE-2024-21626):
		// the kernel prefixes an unreachable one with "(unreachable)".
		char wd[PATH_MAX];
		if (syscall(SYS_getcwd, wd, sizeof(wd)) < 0 || wd[0] != '/')
			fail(0, "process.cwd %s is outside the container's root", cwd);
	}

	// confine, in the Go init's order.
	struct sock_fprog prog = {.len = (unsigned short)nins, .filter = ins};
	int loaded = 0;
	if (nins && !nnp) {
		// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN:
		// do it while we still have it.
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, sflags, &prog) < 0)
			fail(errno, "linux.seccomp: load seccomp filter");
		loaded = 1;
	}
	if (*warnings && write(2, warnings, strlen(warnings)) < 0) {
	}
	if (hascaps) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			fail(errno, "prctl(PR_SET_KEEPCAPS)");
		for (uint32_t n = 0; n <= lastcap; n++) {
			if (bounding & (1ULL << n))
				continue;
			if (prctl(PR_CAPBSET_DROP, n, 0, 0, 0) < 0 && errno != EINVAL)
				fail(errno, "drop capability %u from the bounding set", n);
		}
	}
	if (syscall(SYS_setgroups, ngroups, groups) < 0 && !(ngroups == 0 && errno == EPERM))
		fail(errno, "process.user.additionalGids");
	if (syscall(SYS_setresgid, gid, gid, gid) < 0)
		fail(errno, "process.user.gid %u", gid);
	if (syscall(SYS_setresuid, uid, uid, uid) < 0)
		fail(errno, "process.user.uid %u", uid);
	if (hascaps) {
		if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			fail(errno, "prctl(PR_SET_KEEPCAPS)");
		struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
		struct __user_cap_data_struct data[2];
		for (int i = 0; i < 2; i++) {
			data[i].effective = (uint32_t)(effective >> (32 * i));
			data[i].permitted = (uint32_t)(permitted >> (32 * i));
			data[i].inheritable = (uint32_t)(inheritable >> (32 * i));
		}
		if (syscall(SYS_capset, &hdr, data) < 0)
			fail(errno, "process.capabilities: capset");
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
			fail(errno, "process.capabilities: clear ambient capabilities");
		uint64_t raisable = ambient & permitted & inheritable;
		for (uint32_t n = 0; n <= lastcap; n++)
			if ((raisable & (1ULL << n)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n, 0, 0) < 0)
				fail(errno, "process.capabilities: raise ambient capability %u", n);
	}
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(errno, "process.noNewPrivileges");
	if (nins && !loaded && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, sflags, &prog) < 0)
		fail(errno, "linux.seccomp: load seccomp filter");
	umask((mode_t)umaskv);
	trace("exec");
	execve(path, argv, envp);
	fail(errno, "exec %s", argv[0]);
}

static int tracing;

static void trace(const char *phase) {
	if (!tracing)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char buf[160];
	int n = snprintf(buf, sizeof(buf), "trace %ld.%06ld [%d] cinit: %s\n", (long)(ts.tv_sec % 1000), ts.tv_nsec / 1000,
			 (int)getpid(), phase);
	if (write(2, buf, (size_t)n) < 0) {
	}
}

// close_from closes every descriptor >= from except keep1 and keep2.
static void close_from(int from, int keep1, int keep2) {
	int keep[2] = {keep1 < keep2 ? keep1 : keep2, keep1 < keep2 ? keep2 : keep1};
	for (int i = 0; i < 2; i++) {
		if (keep[i] < from)
			continue;
		if (keep[i] > from)
			syscall(SYS_close_range, (unsigned int)from, (unsigned int)keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	syscall(SYS_close_range, (unsigned int)from, ~0U, 0);
}

void berth_cinit(int sockfd, const char *plan, size_t len) {
	sock = sockfd;
	static const int fatal[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE};
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		signal(fatal[i], sig_exit);
	// The runtime waits for this before it moves the init into its cgroup
	// on v2 (a Go init sends it once its threads exist).
	initsock_send(sock, 'M', NULL, 0);
	struct cur c = {plan, plan + len};
	need(&c, 8);
	if (memcmp(plan, "BPLN", 4) != 0)
		fail(0, "berth-runc init: not a plan");
	c.p += 4;
	if (rd32(&c) != 1)
		fail(0, "berth-runc init: plan version not supported");
	tracing = rd32(&c) & 1;
	trace("plan read");
	int fifo = -1;
	for (;;) {
		uint8_t op = rd8(&c);
		if (op == OP_EXEC) {
			prefix = NULL;
			op_exec(&c);
		}
		struct rec r;
		rdrec(&c, &r);
		prefix = r.err;
		switch (op) {
		case OP_MOUNT:
			if (mount(r.source[0] ? r.source : NULL, r.dest, r.fstype[0] ? r.fstype : NULL, (unsigned long)r.a,
				  r.data[0] ? r.data : NULL) < 0)
				fail(errno, "%s", r.err);
			break;
		case OP_OPEN_ROOT: {
			struct statfs sfs;
			if (statfs("/proc", &sfs) < 0)
				fail(errno, "host /proc is needed to mount through file descriptors: statfs /proc");
			if (sfs.f_type != PROC_SUPER_MAGIC)
				fail(0, "host /proc is needed to mount through file descriptors: /proc is not a procfs (magic %#lx)",
				     (unsigned long)sfs.f_type);
			rootfd = open(r.dest, O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (rootfd < 0)
				fail(errno, "open rootfs");
			break;
		}
		case OP_MOUNT_IN:
			op_mount_in(&r);
			break;
		case OP_SYMLINK_IN:
			op_symlink_in(&r);
			break;
		case OP_MKNOD_IN:
			op_mknod_in(&r);
			break;
		case OP_MKDIR_IN: {
			char path[PATH_MAX];
			secure_join(r.dest, path, sizeof(path));
			int fd = mkdir_all(path);
			if (fd < 0)
				sfail(errno, "mkdir %s", path);
			close(fd);
			break;
		}
		case OP_PIVOT:
			trace("rootfs prepared");
			op_pivot(&r);
			break;
		case OP_REMOUNT:
			op_remount(&r);
			break;
		case OP_READONLY:
			op_readonly(&r);
			break;
		case OP_MASK:
			op_mask(&r);
			break;
		case OP_WAIT_CGROUP: {
			// 'G' comes with the v1 cgroup tasks files to join, if any:
			// writing "0" moves this (single-threaded) process.
			int fds[INITSOCK_MAX_FDS];
			int nfds;
			char t = recv_cgroup(fds, &nfds);
			if (t != 'G')
				fail(0, "unexpected message '%c' while waiting for the cgroup", t);
			if (join_cgroups(fds, nfds) < 0)
				fail(errno, "join cgroup");
			trace("in cgroup");
			if ((r.bits & B_CGROUPNS) && unshare(CLONE_NEWCGROUP) < 0)
				fail(errno, "create cgroup namespace");
			break;
		}
		case OP_HOOKS: {
			initsock_send(sock, 'H', NULL, 0);
			char b;
			initsock_read(sock, &b, 1);
			if (b != 'h')
				fail(0, "runtime hooks failed");
			break;
		}
		case OP_HOSTNAME:
			if (sethostname(r.data, strlen(r.data)) < 0)
				fail(errno, "%s", r.err);
			break;
		case OP_DOMAINNAME:
			if (setdomainname(r.data, strlen(r.data)) < 0)
				fail(errno, "%s", r.err);
			break;
		case OP_WRITE_FILE:
			write_file(r.dest, r.data);
			break;
		case OP_KEYRING:
			if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, r.data) < 0 && errno != ENOSYS && errno != EACCES)
				fail(errno, "%s", r.err);
			break;
		case OP_RLIMIT: {
			struct rlimit rl = {.rlim_cur = r.b, .rlim_max = r.c};
			if (prlimit(0, (int)r.a, &rl, NULL) < 0)
				fail(errno, "%s", r.err);
			break;
		}
		case OP_READY: {
			// Nothing but stdio, preserved fds and the exec fifo may stay
			// open in a created container's init (CVE-2024-21626).
			fifo = (int)r.b;
			unsigned int from = (unsigned int)r.a;
			close_from((int)from, fifo, sock);
			devnull = -1;
			trace("ready");
			initsock_send(sock, 'R', NULL, 0);
			close(sock);
			sock = -1;
			char b;
			ssize_t n;
			do
				n = read(fifo, &b, 1);
			while (n < 0 && errno == EINTR);
			if (n != 1)
				_exit(1);
			close(fifo);
			trace("started");
			break;
		}
		default:
			fail(0, "berth-runc init: unknown plan step %u", op);
		}
	}
}
