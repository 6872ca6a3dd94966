/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/proc.h"

extern char **environ;

#define ERR_TAIL 512u

struct sink {
	char *buf;
	size_t len, cap, max;
	bool keep_tail; /* stderr: keep the last ERR_TAIL bytes */
	bool overflow;
};

static int sink_add(struct sink *s, const char *p, size_t n)
{
	if (s->keep_tail) {
		if (n >= ERR_TAIL) {
			memcpy(s->buf, p + n - ERR_TAIL, ERR_TAIL);
			s->len = ERR_TAIL;
			return 0;
		}
		if (s->len + n > ERR_TAIL) {
			size_t drop = s->len + n - ERR_TAIL;

			memmove(s->buf, s->buf + drop, s->len - drop);
			s->len -= drop;
		}
		memcpy(s->buf + s->len, p, n);
		s->len += n;
		return 0;
	}
	if (s->len + n > s->max) {
		s->overflow = true;
		return 0;
	}
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *nb;

		while (cap < s->len + n + 1)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (!nb)
			return -1;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return 0;
}

/* Last non-empty line of the stderr tail. */
static const char *last_line(char *tail, size_t len)
{
	char *end, *start;

	tail[len] = '\0';
	end = tail + len;
	while (end > tail && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		*--end = '\0';
	start = end;
	while (start > tail && start[-1] != '\n')
		start--;
	return start;
}

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int run(const char *what, const char *root, const char *const *argv, char *const *envp,
	       char **out, tdc_run_tick_fn tick, void *arg, struct tdc_error *e)
{
	bool cancelled = false;
	double killed_at = 0, next_tick = mono_ms() + TDC_RUN_TICK_MS;
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 }, status = 0, r = 0, devnull;
	posix_spawn_file_actions_t fa;
	char tail[ERR_TAIL + 1];
	struct sink so = { .max = TDC_RUN_MAX_OUTPUT };
	struct sink se = { .buf = tail, .keep_tail = true };
	pid_t pid;

	if (out)
		*out = NULL;
	if (pipe2(opipe, O_CLOEXEC) != 0 || pipe2(epipe, O_CLOEXEC) != 0) {
		r = TDC_FAILF(e, TDC_E_IO, what, "pipe: %s", strerror(errno));
		goto out;
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	posix_spawn_file_actions_init(&fa);
	if (devnull >= 0)
		posix_spawn_file_actions_adddup2(&fa, devnull, 0);
	posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
	posix_spawn_file_actions_adddup2(&fa, epipe[1], 2);
	if (root) {
		/* chroot(8) does the chroot; it is in the host's PATH. */
		const char *cargv[64];
		size_t n = 0;

		cargv[n++] = "chroot";
		cargv[n++] = root;
		for (size_t i = 0; argv[i] && n < 63; i++)
			cargv[n++] = argv[i];
		cargv[n] = NULL;
		r = posix_spawnp(&pid, "chroot", &fa, NULL, (char *const *)cargv,
				 envp ? envp : environ);
	} else {
		r = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv,
				 envp ? envp : environ);
	}
	posix_spawn_file_actions_destroy(&fa);
	if (devnull >= 0)
		close(devnull);
	close(opipe[1]);
	close(epipe[1]);
	opipe[1] = epipe[1] = -1;
	if (r != 0) {
		r = TDC_FAILF(e, TDC_E_IO, what, "cannot run %s: %s", argv[0], strerror(r));
		goto out;
	}
	struct pollfd pf[2] = { { opipe[0], POLLIN, 0 }, { epipe[0], POLLIN, 0 } };
	int open_fds = 2;

	while (open_fds > 0) {
		char buf[65536];

		int pr = poll(pf, 2, tick ? TDC_RUN_TICK_MS : -1);

		if (tick && mono_ms() >= next_tick) {
			next_tick = mono_ms() + TDC_RUN_TICK_MS;
			if (!cancelled && tick(arg) != 0) {
				cancelled = true;
				killed_at = mono_ms();
				kill(pid, SIGTERM);
			} else if (cancelled && killed_at && mono_ms() - killed_at > 5000) {
				kill(pid, SIGKILL); /* it ignored SIGTERM */
				killed_at = 0;
			}
		}
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				pf[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0 && out && sink_add(&so, buf, (size_t)n) < 0)
				r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
			if (i == 1)
				(void)sink_add(&se, buf, (size_t)n);
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r < 0)
		goto out;
	if (cancelled) {
		r = TDC_FAILF(e, TDC_E_CANCELLED, "interrupted", "while %s", what);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *line = last_line(tail, se.len);

		if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !*line)
			line = "command not found";
		r = TDC_FAILF(e, TDC_E_IO, what, "%s: %s%s (exit %d)", argv[0], line,
			      WIFSIGNALED(status) ? " killed by a signal" : "",
			      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		goto out;
	}
	if (so.overflow) {
		r = TDC_FAILF(e, TDC_E_LIMIT, what, "%s: output larger than %u bytes", argv[0],
			      TDC_RUN_MAX_OUTPUT);
		goto out;
	}
	if (out) {
		if (!so.buf && sink_add(&so, "", 0) == 0 && !so.buf) {
			so.buf = calloc(1, 1);
			if (!so.buf)
				r = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		}
		*out = so.buf;
		so.buf = NULL;
	}
out:
	free(so.buf);
	for (int i = 0; i < 2; i++) {
		if (opipe[i] >= 0)
			close(opipe[i]);
		if (epipe[i] >= 0)
			close(epipe[i]);
	}
	return r;
}

int tdc_run(const char *what, const char *const *argv, char *const *envp, char **out,
	    struct tdc_error *e)
{
	return run(what, NULL, argv, envp, out, NULL, NULL, e);
}

int tdc_run_watch(const char *what, const char *const *argv, char *const *envp, char **out,
		  tdc_run_tick_fn tick, void *arg, struct tdc_error *e)
{
	return run(what, NULL, argv, envp, out, tick, arg, e);
}

int tdc_run_chroot(const char *what, const char *root, const char *const *argv, char **out,
		   tdc_run_tick_fn tick, void *arg, struct tdc_error *e)
{
	static char *const env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				     "LANG=C", "LC_ALL=C", "HOME=/root", "TMPDIR=/tmp", NULL };

	return run(what, root, argv, env, out, tick, arg, e);
}
