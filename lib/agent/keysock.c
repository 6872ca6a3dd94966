/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key for systemd-cryptsetup, over the crypttab key-file AF_UNIX socket: crypttab names
 * the socket as the volume's key file; systemd-cryptsetup binds its end to the abstract
 * address "@<random hex>/cryptsetup/<volume>", connects and reads until EOF. We send the key
 * once, to a peer running as the expected uid (SO_PEERCRED, from the kernel) whose address
 * names our volume, and remove the socket whatever happens.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-int.h"
#include "util/rd.h"

int tdc_keysock_listen(const char *path, int *fd_out, struct tdc_error *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	struct stat st;
	int fd;

	*fd_out = -1;
	if (!path || path[0] != '/' || strlen(path) >= sizeof(sa.sun_path))
		return TDC_FAIL(e, TDC_E_USAGE, "key socket: need an absolute path of < 108 bytes");
	memcpy(sa.sun_path, path, strlen(path) + 1);
	memcpy(dir, path, strlen(path) + 1);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		return TDC_FAIL(e, TDC_E_USAGE, "key socket: not directly in /");
	*slash = '\0';
	/* Our own directory, root's only: nobody else can see, replace or race the socket. */
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return TDC_FAILF(e, TDC_E_IO, "key socket: cannot create its directory", "%s: %s",
				 dir, strerror(errno));
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 0077))
		return TDC_FAILF(e, TDC_E_INTERNAL,
				 "key socket: directory not ours alone (want mode 0700, our uid)",
				 "%s", dir);
	if (unlink(path) != 0 && errno != ENOENT) /* a stale socket of an earlier attempt */
		return TDC_FAILF(e, TDC_E_IO, "key socket: cannot remove the old one", "%s: %s",
				 path, strerror(errno));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "key socket: socket()", "%s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0600) != 0 ||
	    listen(fd, 4) != 0) {
		int r = TDC_FAILF(e, TDC_E_IO, "key socket: cannot listen", "%s: %s", path,
				  strerror(errno));
		close(fd);
		(void)unlink(path);
		return r;
	}
	*fd_out = fd;
	return 0;
}

/* systemd-cryptsetup's name for its end: "\0" hex digits "/cryptsetup/" volume. The name is
 * the peer's choice: read it through the bounded reader. */
static bool peer_names_volume(int fd, const char *volume)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	static const char mid[] = "/cryptsetup/";
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	struct tdc_rd r, h, name;
	struct tdc_error e = { 0 };
	size_t hex = 0;

	memset(&sa, 0, sizeof(sa));
	if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 || len <= off || len > sizeof(sa))
		return false;
	tdc_rd_init(&r, sa.sun_path, len - off); /* abstract names: the length says, no NUL */
	if (tdc_rd_len(&r) < 1 || tdc_rd_at(&r, 0) != '\0' || tdc_rd_skip(&r, 1, "peer", &e) < 0)
		return false;
	tdc_rd_rest(&r, &h); /* tdc_rd_at(&h, i) counts from the first hex digit */
	while (hex < tdc_rd_len(&h) && ((tdc_rd_at(&h, hex) >= '0' && tdc_rd_at(&h, hex) <= '9') ||
					(tdc_rd_at(&h, hex) >= 'a' && tdc_rd_at(&h, hex) <= 'f')))
		hex++;
	if (hex == 0 || tdc_rd_skip(&h, hex, "peer", &e) < 0 ||
	    !tdc_rd_starts_with(&h, mid, sizeof(mid) - 1) ||
	    tdc_rd_skip(&h, sizeof(mid) - 1, "peer", &e) < 0)
		return false;
	tdc_rd_rest(&h, &name);
	return tdc_rd_len(&name) == strlen(volume) &&
	       tdc_rd_starts_with(&name, volume, strlen(volume));
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int tdc_keysock_serve(int fd, const char *path, const struct tdc_keysock_peer *want,
		      const uint8_t *key, size_t key_len, const struct tdc_agent_clock *clk,
		      int64_t deadline, const struct tdc_agent_events *ev, struct tdc_error *e)
{
	int r = 1;

	while (r > 0) {
		int64_t left = deadline - clk->now_ms(clk->arg);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct ucred cr;
		socklen_t cl = sizeof(cr);

		if (left < 0)
			left = 0;
		int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = TDC_FAILF(e, TDC_E_IO, "key socket: poll", "%s", strerror(errno));
			break;
		}
		if (n == 0) {
			if (clk->now_ms(clk->arg) >= deadline)
				r = TDC_FAIL(e, TDC_E_IO,
					     "key socket: nobody asked for the key before the deadline");
			continue;
		}
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN)
				r = TDC_FAILF(e, TDC_E_IO, "key socket: accept", "%s", strerror(errno));
			continue;
		}
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cl != sizeof(cr)) {
			tdc_agent_say(ev, 0, "key socket: no peer credentials; refused");
		} else if (cr.uid != want->uid) {
			tdc_agent_say(ev, 0, "key socket: peer pid %d uid %u is not uid %u; refused",
				      (int)cr.pid, (unsigned)cr.uid, (unsigned)want->uid);
		} else if (want->volume && !peer_names_volume(c, want->volume)) {
			tdc_agent_say(ev, 0,
				      "key socket: peer pid %d is not systemd-cryptsetup for %s; "
				      "refused", (int)cr.pid, want->volume);
		} else if (send_all(c, key, key_len) != 0) {
			r = TDC_FAILF(e, TDC_E_IO, "key socket: send", "%s", strerror(errno));
		} else {
			tdc_agent_say(ev, 0, "key sent once to pid %d over %s", (int)cr.pid, path);
			r = 0;
		}
		close(c);
	}
	return r;
}

void tdc_keysock_close(int fd, const char *path)
{
	if (fd >= 0)
		close(fd);
	if (path)
		(void)unlink(path);
}

/* A crypttab field must be one word that systemd's parser takes as is. */
static bool crypttab_word(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == '#' || *s == ',' || *s == '\\' || *s == '"' ||
		    *s == '\'' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int tdc_keysock_header_path(const char *sock, const char *volume, char *buf, size_t cap,
			    struct tdc_error *e)
{
	const char *slash = sock ? strrchr(sock, '/') : NULL;
	int n;

	if (!slash || slash == sock || !volume || !*volume || strchr(volume, '/'))
		return TDC_FAIL(e, TDC_E_USAGE, "key socket: need /DIR/NAME and a volume name");
	n = snprintf(buf, cap, "%.*s/%s.header", (int)(slash - sock), sock, volume);
	if (n < 0 || (size_t)n >= cap)
		return TDC_FAIL(e, TDC_E_LIMIT, "key socket: header path too long");
	return 0;
}

int tdc_keysock_crypttab_line(const struct tdc_agent_config *c, const char *sock, char *buf,
			      size_t cap, struct tdc_error *e)
{
	char slot[24] = "", hdr[128];
	int n;

	if (!crypttab_word(c->luks_name) || !crypttab_word(c->luks_device) ||
	    !crypttab_word(sock) || sock[0] != '/')
		return TDC_FAIL(e, TDC_E_FORMAT,
				"crypttab: volume, device and socket must be plain words");
	TDC_GUARD(tdc_keysock_header_path(sock, c->luks_name, hdr, sizeof(hdr), e));
	if (c->keyslot >= 0)
		snprintf(slot, sizeof(slot), ",key-slot=%d", c->keyslot);
	/* header=: the copy of the checked header; headless: never ask for a passphrase on a
	 * console nobody watches; tries=1: the socket answers once, a second read could only
	 * fail */
	n = snprintf(buf, cap, "%s %s %s luks,header=%s,headless=true,tries=1%s\n", c->luks_name,
		     c->luks_device, sock, hdr, slot);
	if (n < 0 || (size_t)n >= cap)
		return TDC_FAIL(e, TDC_E_LIMIT, "crypttab: line too long");
	return 0;
}
