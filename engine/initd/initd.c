// berth-init: the init process `berth run --init` puts in a container. The
// berth binary is bind-mounted read-only at /sbin/berth-init; when it runs
// under that name this constructor takes over before the Go runtime
// starts: it runs the command as its child, forwards every signal it gets
// to the child, reaps every process that ends up its child (orphans of
// the container), and exits with the command's status (128+signal when a
// signal killed it). It never returns to Go.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_init_name(const char *argv0) {
	const char *base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	return strcmp(base, "berth-init") == 0;
}

__attribute__((constructor)) static void berth_initd(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 1 || !argv || !argv[0] || !is_init_name(argv[0]))
		return;
	int first = 1;
	if (first < argc && strcmp(argv[first], "--") == 0)
		first++;
	if (first >= argc) {
		fputs("berth-init: no command given\n", stderr);
		_exit(2);
	}
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	// Orphans of the container come to us even when we are not pid 1
	// (--pid host or a shared namespace).
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	pid_t child = fork();
	if (child < 0) {
		perror("berth-init: fork");
		_exit(1);
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[first], argv + first);
		int e = errno;
		fprintf(stderr, "berth-init: exec %s: %s\n", argv[first], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			perror("berth-init: sigwaitinfo");
			_exit(1);
		}
		if (sig != SIGCHLD) {
			// Stop signals are for us to ignore; everything else goes on.
			if (sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU)
				kill(child, sig);
			continue;
		}
		int status;
		pid_t p;
		while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
			if (p != child)
				continue;
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			// Reap what is left without waiting for it: the kernel kills
			// the rest of the pid namespace when we exit.
			while (waitpid(-1, &status, WNOHANG) > 0)
				;
			_exit(code);
		}
	}
}
