/* SPDX-License-Identifier: Apache-2.0 */
/* lib/agent/keysock.c: the key goes once, only to a peer with the wanted uid whose address is
 * systemd-cryptsetup's for the volume; the socket is gone afterwards. Each refusal has its own
 * test in which that check alone turns the peer away. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "tdcrypt/agent.h"

static const uint8_t key[] = "0123456789abcdef-not-a-real-key-\x00\xff";

struct fx {
	char dir[64];
	char path[128];
	int fd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/tdc-keysock-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/run/key.sock", f->dir);
	f->fd = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char sub[160];
	tdc_keysock_close(f->fd, f->path);
	snprintf(sub, sizeof(sub), "%s/run", f->dir);
	rmdir(sub);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A client as systemd-cryptsetup makes it: its own end bound to "\0<hex>/cryptsetup/<vol>"
 * (name NULL: unbound), then connect. */
static int client(const char *path, const char *name)
{
	struct sockaddr_un me = {.sun_family = AF_UNIX}, to = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (name) {
		size_t n = strlen(name);
		memcpy(me.sun_path + 1, name, n);
		assert_int_equal(bind(fd, (struct sockaddr *)&me,
				      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)),
				 0);
	}
	memcpy(to.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

static char *peer_name(const char *volume)
{
	static char buf[3][96];
	static int i;
	char *b = buf[i++ % 3];
	/* unique per process and call: abstract names are machine-wide */
	snprintf(b, sizeof(buf[0]), "%x%04x/cryptsetup/%s", (unsigned)getpid(), (unsigned)i,
		 volume);
	return b;
}

static size_t read_all(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;
	while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
		got += (size_t)n;
	return got;
}

static int serve(struct fx *f, unsigned uid, const char *volume, int64_t window_ms)
{
	const struct tdc_agent_clock *clk = tdc_agent_real_clock();
	struct tdc_keysock_peer want = {.uid = uid, .volume = volume};
	struct tdc_error e = {0};
	return tdc_keysock_serve(f->fd, f->path, &want, key, sizeof(key), clk,
				 clk->now_ms(clk->arg) + window_ms, NULL, &e);
}

static void serves_once_then_gone(void **state)
{
	struct fx *f = *state;
	struct tdc_error e = {0};
	struct stat st;
	uint8_t got[128];

	assert_int_equal(tdc_keysock_listen(f->path, &f->fd, &e), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	int c = client(f->path, peer_name("root"));
	assert_true(c >= 0);
	assert_int_equal(serve(f, (unsigned)getuid(), "root", 5000), 0);
	assert_int_equal(read_all(c, got, sizeof(got)), sizeof(key));
	assert_memory_equal(got, key, sizeof(key));
	close(c);
	tdc_keysock_close(f->fd, f->path);
	f->fd = -1;
	assert_int_equal(stat(f->path, &st), -1);
	assert_int_equal(errno, ENOENT);
	/* once: nobody can connect any more */
	assert_int_equal(client(f->path, peer_name("root")), -ENOENT);
}

/* The right name, the wrong uid: refused (nothing sent), and nobody else came: deadline. */
static void wrong_uid_refused(void **state)
{
	struct fx *f = *state;
	struct tdc_error e = {0};
	uint8_t got[128];

	assert_int_equal(tdc_keysock_listen(f->path, &f->fd, &e), 0);
	int c = client(f->path, peer_name("root"));
	assert_true(c >= 0);
	assert_true(serve(f, (unsigned)getuid() + 1, "root", 300) < 0);
	assert_int_equal(read_all(c, got, sizeof(got)), 0);
	close(c);
}

/* The right uid; an unbound peer, then one for another volume, then a name that is not
 * systemd's form: all refused; the real one after them gets the key. */
static void wrong_peer_name_refused(void **state)
{
	struct fx *f = *state;
	struct tdc_error e = {0};
	uint8_t got[128];

	assert_int_equal(tdc_keysock_listen(f->path, &f->fd, &e), 0);
	int anon = client(f->path, NULL);
	int other = client(f->path, peer_name("home"));
	int odd = client(f->path, "xyz/cryptsetup/root");
	int good = client(f->path, peer_name("root"));
	assert_true(anon >= 0 && other >= 0 && odd >= 0 && good >= 0);
	assert_int_equal(serve(f, (unsigned)getuid(), "root", 5000), 0);
	assert_int_equal(read_all(anon, got, sizeof(got)), 0);
	assert_int_equal(read_all(other, got, sizeof(got)), 0);
	assert_int_equal(read_all(odd, got, sizeof(got)), 0);
	assert_int_equal(read_all(good, got, sizeof(got)), sizeof(key));
	close(anon);
	close(other);
	close(odd);
	close(good);
}

static void nobody_asks_deadline(void **state)
{
	struct fx *f = *state;
	struct tdc_error e = {0};

	assert_int_equal(tdc_keysock_listen(f->path, &f->fd, &e), 0);
	assert_true(serve(f, (unsigned)getuid(), "root", 100) < 0);
}

/* Its directory must be ours alone: a group/world-accessible one is refused, no socket made. */
static void shared_directory_refused(void **state)
{
	struct fx *f = *state;
	struct tdc_error e = {0};
	char sub[160];
	struct stat st;

	snprintf(sub, sizeof(sub), "%s/run", f->dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(chmod(sub, 0755), 0);
	assert_true(tdc_keysock_listen(f->path, &f->fd, &e) < 0);
	assert_int_equal(f->fd, -1);
	assert_int_equal(stat(f->path, &st), -1);
	assert_int_equal(chmod(sub, 0700), 0);
	assert_int_equal(tdc_keysock_listen(f->path, &f->fd, &e), 0);
}

/* A stale socket of an earlier attempt is replaced, not a reason to fail. */
static void stale_socket_replaced(void **state)
{
	struct fx *f = *state;
	struct tdc_error e = {0};
	int old;

	assert_int_equal(tdc_keysock_listen(f->path, &old, &e), 0);
	close(old); /* the file stays, as after a crash */
	assert_int_equal(tdc_keysock_listen(f->path, &f->fd, &e), 0);
	int c = client(f->path, peer_name("root"));
	assert_true(c >= 0);
	assert_int_equal(serve(f, (unsigned)getuid(), "root", 5000), 0);
	close(c);
}

/* The initramfs crypttab line: the socket as key file, headless, one try, the keyslot; a field
 * that is not one plain word would change the line's meaning and is refused. */
static void crypttab_line(void **state)
{
	struct tdc_agent_config c = {0};
	struct tdc_error e = {0};
	char buf[256];
	(void)state;
	c.luks_name = "root";
	c.luks_device = "/dev/disk/by-uuid/0f1e";
	c.keyslot = 0;
	assert_int_equal(tdc_keysock_crypttab_line(&c, "/run/tdcrypt/key.sock", buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, "root /dev/disk/by-uuid/0f1e /run/tdcrypt/key.sock "
				 "luks,header=/run/tdcrypt/root.header,headless=true,tries=1,key-slot=0\n");
	c.keyslot = -1;
	assert_int_equal(tdc_keysock_crypttab_line(&c, "/run/tdcrypt/key.sock", buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, "root /dev/disk/by-uuid/0f1e /run/tdcrypt/key.sock "
				 "luks,header=/run/tdcrypt/root.header,headless=true,tries=1\n");
	c.luks_device = "/dev/vda2 none";
	assert_true(tdc_keysock_crypttab_line(&c, "/run/tdcrypt/key.sock", buf, sizeof(buf), &e) < 0);
	c.luks_device = "/dev/vda2";
	assert_true(tdc_keysock_crypttab_line(&c, "/run/key.sock,x", buf, sizeof(buf), &e) < 0);
	assert_true(tdc_keysock_crypttab_line(&c, "key.sock", buf, sizeof(buf), &e) < 0);
	assert_true(tdc_keysock_crypttab_line(&c, "/run/tdcrypt/key.sock", buf, 20, &e) < 0);
	assert_int_equal(tdc_keysock_header_path("/run/x/k.sock", "vol", buf, sizeof(buf), &e), 0);
	assert_string_equal(buf, "/run/x/vol.header");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(serves_once_then_gone, setup, teardown),
	    cmocka_unit_test_setup_teardown(wrong_uid_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(wrong_peer_name_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(nobody_asks_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(shared_directory_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(stale_socket_replaced, setup, teardown),
	    cmocka_unit_test(crypttab_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
