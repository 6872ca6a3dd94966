/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stdio <-> TCP relay of `tdcrypt forward`. QEMU (libslirp) runs the
 * guestfwd command once per guest connection with that connection on the
 * command's stdin, stdout AND stderr, so the relay must never print: every
 * byte on fd 2 would land in the guest's TLS stream.
 * One thread, poll(), a 16 KiB buffer per direction; half-closes are passed
 * on, so request/response protocols that shut down their write side work.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tdcrypt/launch.h"

#define RELAY_BUF 16384

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int connect_one(const struct addrinfo *ai, uint32_t timeout_ms, int *out)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			int err = errno;
			close(fd);
			return -err;
		}
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int r;
		do
			r = poll(&p, 1, (int)timeout_ms);
		while (r < 0 && errno == EINTR);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (r == 0)
			soerr = ETIMEDOUT;
		else if (r < 0)
			soerr = errno;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr) {
			close(fd);
			return -soerr;
		}
	}
	*out = fd;
	return 0;
}

int tdc_relay_connect(const char *host, uint16_t port, uint32_t connect_ms, int *fd,
		      struct tdc_error *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char ps[8];
	if (!host || !fd || port == 0)
		return TDC_FAIL(e, TDC_E_USAGE, "bad relay target");
	snprintf(ps, sizeof(ps), "%u", port);
	int g = getaddrinfo(host, ps, &hints, &res);
	if (g != 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot resolve relay target", "%s: %s", host,
				 gai_strerror(g));
	int err = ENOENT;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int r = connect_one(ai, connect_ms ? connect_ms : TDC_RELAY_CONNECT_MS, fd);
		if (r == 0) {
			freeaddrinfo(res);
			return 0;
		}
		err = -r;
	}
	freeaddrinfo(res);
	return TDC_FAILF(e, TDC_E_IO, "cannot connect to relay target", "%s:%u: %s", host, port,
			 strerror(err));
}

struct dir {
	int from, to;
	char buf[RELAY_BUF];
	size_t len, off;
	bool eof;  /* source reached EOF */
	bool done; /* EOF passed on to the destination */
};

/* send() with MSG_NOSIGNAL on sockets (no SIGPIPE), write() on anything else. */
static ssize_t put(int fd, const void *p, size_t n)
{
	ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0 && errno == ENOTSOCK)
		w = write(fd, p, n);
	return w;
}

static void pass_eof(int fd)
{
	if (shutdown(fd, SHUT_WR) < 0 && errno == ENOTSOCK)
		close(fd); /* a pipe can only signal EOF by closing */
}

/* One step of a direction after poll: read if readable, write if writable. */
static int step(struct dir *d, short rev_from, short rev_to, struct tdc_error *e, bool *moved)
{
	if (d->len == 0 && !d->eof && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t r = read(d->from, d->buf, sizeof(d->buf));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "relay read failed", "%s", strerror(errno));
		if (r == 0)
			d->eof = true;
		d->len = (size_t)r;
		d->off = 0;
		*moved = true;
	} else if (d->len > 0 && (rev_to & (POLLOUT | POLLHUP | POLLERR))) {
		ssize_t w = put(d->to, d->buf + d->off, d->len);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (w < 0)
			return TDC_FAILF(e, TDC_E_IO, "relay write failed", "%s", strerror(errno));
		d->off += (size_t)w;
		d->len -= (size_t)w;
		*moved = true;
	}
	if (d->eof && d->len == 0 && !d->done) {
		pass_eof(d->to);
		d->done = true;
	}
	return 0;
}

static int relay_loop(struct dir *up, struct dir *down, int64_t idle, struct tdc_error *e)
{
	int64_t last = now_ms();
	while (!(up->done && down->done)) {
		/* [0] up->from, [1] up->to, [2] down->from, [3] down->to; -1 = not polled */
		struct pollfd p[4] = {
			{ .fd = up->len == 0 && !up->eof ? up->from : -1, .events = POLLIN },
			{ .fd = up->len > 0 ? up->to : -1, .events = POLLOUT },
			{ .fd = down->len == 0 && !down->eof ? down->from : -1, .events = POLLIN },
			{ .fd = down->len > 0 ? down->to : -1, .events = POLLOUT },
		};
		int64_t left = idle - (now_ms() - last);
		if (left <= 0)
			return TDC_FAIL(e, TDC_E_IO, "relay idle timeout");
		int r = poll(p, 4, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "poll failed", "%s", strerror(errno));
		if (r == 0)
			return TDC_FAIL(e, TDC_E_IO, "relay idle timeout");
		bool moved = false;
		TDC_GUARD(step(up, p[0].revents, p[1].revents, e, &moved));
		TDC_GUARD(step(down, p[2].revents, p[3].revents, e, &moved));
		if (moved)
			last = now_ms();
	}
	return 0;
}

int tdc_relay_run(int in_fd, int out_fd, int sock, uint32_t idle_ms, struct tdc_error *e)
{
	if (in_fd < 0 || out_fd < 0 || sock < 0)
		return TDC_FAIL(e, TDC_E_USAGE, "bad file descriptor");
	struct dir *d = malloc(2 * sizeof(*d)); /* 32 KiB of buffers: off the stack */
	if (!d)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	d[0] = (struct dir){ .from = in_fd, .to = sock };
	d[1] = (struct dir){ .from = sock, .to = out_fd };
	int rc = relay_loop(&d[0], &d[1], idle_ms ? idle_ms : TDC_RELAY_IDLE_MS, e);
	free(d);
	return rc;
}
