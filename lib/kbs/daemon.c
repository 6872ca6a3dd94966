/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt-kbs as two processes (docs/ARCHITECTURE.md, "Privilege separation"):
 *
 *   keeper (as started, root)            network process (--user, sandboxed)
 *   store, master key, audit, admin <--> TLS, HTTP, quotes, PCCS, policy
 *               one channel per worker + a control channel (socketpairs)
 *
 * The fork comes first, before the store is opened, so the network process never has
 * the master key or the store's pages in its memory. Then: the keeper opens the store
 * and says so on the control channel; the network process sets up TLS, its socket and
 * its collateral, enters its sandbox, starts its workers, logs "listening" and answers;
 * only then does the keeper serve its channels and open the admin socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kbs/kbs-int.h"
#include "util/rd.h"
#include "util/wr.h"

static volatile pid_t net_pid;
static struct tdc_kbs *net_self; /* in the network process */
/* the keeper's requests from signal handlers (tdc_kbs_daemon_reload), to its main thread */
static volatile int req_pipe = -1;

static void net_signal(int sig)
{
	if (!net_self) {
		if (sig != SIGUSR2)
			_exit(1); /* still starting: nothing to finish */
		return;
	}
	if (sig == SIGUSR2)
		tdc_kbs_drain(net_self);
	else
		tdc_kbs_stop(net_self);
}

/* The keeper's clock and log: the configuration's fixed time, or the hooks'. */
struct keeper_env {
	const struct tdc_kbs_config *c;
	const struct tdc_kbs_hooks *h;
};

static int64_t keeper_now(void *arg)
{
	const struct keeper_env *k = arg;
	return k->c->has_at ? k->c->at : k->h && k->h->now ? k->h->now(k->h->arg) : 0;
}

static void keeper_log(void *arg, const char *line)
{
	const struct keeper_env *k = arg;
	if (k->h && k->h->log)
		k->h->log(k->h->arg, line);
}

void tdc_kbs_daemon_stop(void)
{
	pid_t p = net_pid;
	if (p > 0)
		kill(p, SIGTERM);
}

void tdc_kbs_daemon_drain(void)
{
	pid_t p = net_pid;
	if (p > 0)
		kill(p, SIGUSR2);
}

void tdc_kbs_daemon_reload(void)
{
	int fd = req_pipe;
	if (fd >= 0) {
		ssize_t w = write(fd, "h", 1);
		(void)w;
	}
}

/* SIGHUP: the configuration as it is now (the front end's hook, or the running one with
 * its files read again), checked and applied by the keeper and the network process, or
 * refused whole; *running becomes it on success. */
static void reload(struct kbs_keeper *keeper, const struct tdc_kbs_hooks *h,
		   struct tdc_kbs_config *running)
{
	struct tdc_kbs_config next;
	struct tdc_error e;
	tdc_error_clear(&e);
	tdc_kbs_config_init(&next);
	int r = 0;
	if (h && h->reload) {
		r = h->reload(h->arg, &next, &e);
	} else {
		tdc_kbs_config_free(&next);
		r = tdc_kbs_config_copy(&next, running, &e);
	}
	if (kbs_keeper_reload(keeper, running, r == 0 ? &next : NULL, &e) == 0) {
		tdc_kbs_config_free(running);
		*running = next;
	} else {
		tdc_kbs_config_free(&next);
	}
}

/* Until the network process ends, serving reload requests; its wait status. */
static int wait_net(pid_t pid, int req_fd, struct kbs_keeper *keeper,
		    const struct tdc_kbs_hooks *h, struct tdc_kbs_config *running)
{
	int status = 0;
	for (;;) {
		struct pollfd p = { .fd = req_fd, .events = POLLIN };
		/* the timeout only bounds how late a child that ended is seen */
		int pr = poll(&p, 1, 200);
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			return status;
		if (pr > 0 && (p.revents & POLLIN)) {
			char buf[16];
			ssize_t n = read(req_fd, buf, sizeof(buf));
			if (n > 0 && keeper)
				reload(keeper, h, running);
		}
	}
}

/* READY on the control channel: a status and an error text. */
int kbs_send_ready(int fd, const struct tdc_error *err)
{
	struct tdc_wr w;
	uint8_t *b = NULL;
	size_t n = 0;
	char buf[400] = "";
	tdc_wr_init_alloc(&w, 1024);
	tdc_wr_u8(&w, KOP_READY);
	tdc_wr_u8(&w, err && err->code ? KST_ERROR : KST_OK);
	kbs_put_str(&w, err && err->code ? tdc_error_format(err, buf, sizeof(buf)) : NULL);
	int r = tdc_wr_finish(&w, &b, &n, NULL);
	if (r == 0)
		r = kbs_frame_send(fd, b, n, NULL);
	kbs_frame_free(b, n);
	return r;
}

int kbs_recv_ready(int fd, struct tdc_error *e)
{
	uint8_t *b = NULL, op = 0, st = 0;
	size_t n = 0;
	char *msg = NULL;
	TDC_GUARD(kbs_frame_recv(fd, &b, &n, e));
	struct tdc_rd r;
	tdc_rd_init(&r, b, n);
	int rc = tdc_rd_u8(&r, &op, "op", e);
	if (rc == 0)
		rc = tdc_rd_u8(&r, &st, "status", e);
	if (rc == 0)
		rc = kbs_get_str(&r, 512, &msg, "message", e);
	if (rc == 0 && op != KOP_READY)
		rc = TDC_FAIL(e, TDC_E_FORMAT, "unexpected control message");
	if (rc == 0 && st != KST_OK)
		rc = TDC_FAILF(e, TDC_E_IO, "the other process failed to start", "%s",
			       msg ? msg : "?");
	free(msg);
	kbs_frame_free(b, n);
	return rc;
}

/* The network process: never returns. */
static void run_net(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h, int *theirs)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	/* dies with the keeper */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_DUMPABLE, 0);
	/* a database URL may carry credentials: only the keeper keeps it */
	struct tdc_kbs_config nc = *c;
	if (tdc_store_is_url(c->db)) {
		OPENSSL_cleanse((char *)c->db, strlen(c->db));
		nc.db = "";
	}
	/* SIGTERM/SIGINT stop, SIGUSR2 drains (forwarded by the keeper); SIGHUP is the
	 * keeper's (it reloads and tells this process), so one sent to the whole group is
	 * not a reason to die here */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = net_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	struct tdc_kbs *k = NULL;
	int r = kbs_net_new(&nc, h, theirs, &k, &e);
	if (r == 0) {
		net_self = k;
		r = kbs_net_start(k, &e);
	}
	if (r < 0) {
		char buf[512];
		fprintf(stderr, "tdcrypt-kbs: network process: %s\n",
			tdc_error_format(&e, buf, sizeof(buf)));
		if (k)
			(void)kbs_send_ready(kbs_net_control_fd(k), &e);
		tdc_kbs_free(k);
		_exit(1);
	}
	r = tdc_kbs_run(k, &e);
	tdc_kbs_free(k);
	_exit(r < 0 ? 1 : 0);
}

int tdc_kbs_daemon(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h,
		   struct tdc_error *e)
{
	TDC_GUARD(tdc_kbs_config_check(c, e));
	unsigned workers = c->workers ? c->workers : TDC_KBS_DEFAULT_WORKERS;
	/* channels: [0, workers) for the workers, [workers] the control channel */
	int *net = calloc(workers + 1, sizeof(int)), *keep = calloc(workers + 1, sizeof(int));
	if (!net || !keep) {
		free(net);
		free(keep);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	int r = 0, reqs[2] = { -1, -1 };
	struct tdc_kbs_config running;
	memset(&running, 0, sizeof(running));
	for (unsigned i = 0; i <= workers; i++)
		net[i] = keep[i] = -1;
	if (pipe2(reqs, O_CLOEXEC | O_NONBLOCK) < 0)
		r = TDC_FAILF(e, TDC_E_IO, "cannot create a pipe", "%s", strerror(errno));
	if (r == 0)
		r = tdc_kbs_config_copy(&running, c, e);
	for (unsigned i = 0; r == 0 && i <= workers; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			r = TDC_FAILF(e, TDC_E_IO, "cannot create a keeper channel", "%s",
				      strerror(errno));
		else
			net[i] = sv[0], keep[i] = sv[1];
	}
	pid_t pid = r == 0 ? fork() : -1;
	if (r == 0 && pid < 0)
		r = TDC_FAILF(e, TDC_E_IO, "cannot fork the network process", "%s", strerror(errno));
	if (pid == 0) {
		for (unsigned i = 0; i <= workers; i++)
			close(keep[i]);
		close(reqs[0]);
		close(reqs[1]);
		run_net(c, h, net);
	}
	for (unsigned i = 0; i <= workers; i++)
		if (net[i] >= 0)
			close(net[i]);
	free(net);
	struct tdc_store *store = NULL;
	struct kbs_keeper *keeper = NULL;
	if (r == 0) {
		net_pid = pid;
		r = tdc_store_open_ex(c->db, c->master_key, TDC_STORE_EXCLUSIVE, &store, e);
		struct tdc_error fail;
		tdc_error_clear(&fail);
		if (kbs_send_ready(keep[workers], r < 0 ? e : &fail) < 0 && r == 0)
			r = TDC_FAIL(e, TDC_E_IO, "the network process is gone");
		if (r == 0)
			r = kbs_recv_ready(keep[workers], e);
	}
	struct keeper_env env = { c, h };
	if (r == 0) {
		struct kbs_keeper_opts ko = { keeper_log, keeper_now, &env, c->admin_socket,
					      keep[workers] };
		r = kbs_keeper_start(store, &ko, keep, workers, &keeper, e);
	}
	int status = 0;
	if (pid > 0) {
		if (r < 0) {
			kill(pid, SIGTERM);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		} else {
			req_pipe = reqs[1];
			status = wait_net(pid, reqs[0], keeper, h, &running);
			req_pipe = -1;
		}
		net_pid = 0;
	}
	for (int i = 0; i < 2; i++)
		if (reqs[i] >= 0)
			close(reqs[i]);
	tdc_kbs_config_free(&running);
	kbs_keeper_stop(keeper);
	tdc_store_close(store);
	for (unsigned i = 0; i <= workers; i++)
		if (keep[i] >= 0)
			close(keep[i]);
	free(keep);
	if (r == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		r = WIFSIGNALED(status)
			    ? TDC_FAILF(e, TDC_E_INTERNAL, "the network process died",
					"signal %d%s", WTERMSIG(status),
					WTERMSIG(status) == SIGSYS ? " (a system call its sandbox "
								     "forbids)"
								   : "")
			    : TDC_FAILF(e, TDC_E_INTERNAL, "the network process failed",
					"exit status %d", WEXITSTATUS(status));
	return r;
}
