/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt-kbs: the key broker daemon. Thin: flags and config (lib/kbs/config.c),
 * process hardening, signals, the log sink (one JSON line per event on stderr)
 * and the wall clock. Everything else is in lib/kbs.
 *   tdcrypt-kbs [--config FILE] [flags]          run the broker
 *   tdcrypt-kbs init [--config FILE] [flags]     create the master key (0600) and the store
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>

#include "tdcrypt/kbs.h"
#include "tdcrypt/store.h"

static struct tdc_kbs *server;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_line(void *arg, const char *line)
{
	(void)arg;
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s\n", line);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

static int64_t wall_clock(void *arg)
{
	(void)arg;
	return (int64_t)time(NULL);
}

static void on_signal(int sig)
{
	(void)sig;
	if (server)
		tdc_kbs_stop(server);
}

static int fail(const char *what, const struct tdc_error *e)
{
	char buf[512];
	fprintf(stderr, "tdcrypt-kbs: %s: %s\n", what, tdc_error_format(e, buf, sizeof(buf)));
	return e->code == TDC_E_USAGE ? 3 : 1;
}

static int do_init(const struct tdc_kbs_config *c)
{
	struct tdc_error e;
	struct tdc_store *s = NULL;
	struct stat st;
	tdc_error_clear(&e);
	if (!c->master_key || !c->db) {
		fprintf(stderr, "tdcrypt-kbs: init needs --master-key and --db\n");
		return 3;
	}
	if (stat(c->master_key, &st) == 0) {
		fprintf(stderr, "tdcrypt-kbs: init: %s exists; keeping it\n", c->master_key);
	} else if (tdc_store_master_key_create(c->master_key, &e) < 0) {
		return fail("init: master key", &e);
	} else {
		fprintf(stderr, "tdcrypt-kbs: created master key %s (0600); back it up offline\n",
			c->master_key);
	}
	if (tdc_store_open(c->db, c->master_key, &s, &e) < 0)
		return fail("init: store", &e);
	tdc_store_close(s);
	fprintf(stderr, "tdcrypt-kbs: store %s ready\n", c->db);
	return 0;
}

int main(int argc, char **argv)
{
	struct tdc_kbs_config cfg;
	struct tdc_error e;
	bool help = false, init = false;

	/* no core dumps and no ptrace by other users: the process holds secrets */
	prctl(PR_SET_DUMPABLE, 0);
	tdc_error_clear(&e);
	if (argc >= 2 && !strcmp(argv[1], "init")) {
		init = true;
		argv++;
		argc--;
	}
	tdc_kbs_config_init(&cfg);
	if (tdc_kbs_config_args(argc, argv, &cfg, &help, &e) < 0) {
		int rc = fail("configuration", &e);
		fprintf(stderr, "%s", tdc_kbs_usage);
		tdc_kbs_config_free(&cfg);
		return rc;
	}
	if (help) {
		fputs(tdc_kbs_usage, stdout);
		tdc_kbs_config_free(&cfg);
		return 0;
	}
	if (init) {
		int rc = do_init(&cfg);
		tdc_kbs_config_free(&cfg);
		return rc;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	struct tdc_kbs_hooks hooks = { .log = log_line, .now = wall_clock, .arg = NULL };
	struct tdc_kbs *k = NULL;
	if (tdc_kbs_new(&cfg, &hooks, &k, &e) < 0) {
		int rc = fail("start-up", &e);
		tdc_kbs_config_free(&cfg);
		return rc;
	}
	if (tdc_kbs_sim_root_sha256(k))
		fprintf(stderr,
			"tdcrypt-kbs: WARNING: TRUSTING THE SIMULATOR ROOT CA sha256=%s INSTEAD OF "
			"INTEL'S. Simulated quotes will be accepted. Testing only!\n",
			tdc_kbs_sim_root_sha256(k));
	server = k;
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = tdc_kbs_run(k, &e) < 0 ? fail("event loop", &e) : 0;
	server = NULL;
	tdc_kbs_free(k);
	tdc_kbs_config_free(&cfg);
	return rc;
}
