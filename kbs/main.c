/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt-kbs: the key broker daemon. Thin: flags and config (lib/kbs/config.c),
 * process hardening, signals, the log sink (--log: JSON lines or text on stderr, or
 * journald natively; the formats are lib/kbs/logfmt.c) and the wall clock. Everything
 * else is in lib/kbs.
 * Signals: SIGTERM/SIGINT stop now; SIGUSR2 drains (stop accepting, finish the requests
 * in flight, exit 0); SIGHUP reloads (the file and the flags read again).
 *   tdcrypt-kbs [--config FILE] [flags]          run the broker
 *   tdcrypt-kbs init [--config FILE] [flags]     create the master key (0600) and the store
 *   tdcrypt-kbs check [--full] [...]             check the store (structure, key, secrets)
 *   tdcrypt-kbs backup --out FILE [...]          online backup of the store
 *   tdcrypt-kbs restore --from FILE [...]        replace the store by a backup (broker stopped)
 *   tdcrypt-kbs [SUBCOMMAND] --help | --version
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>

#ifdef TDC_HAVE_JOURNAL
#include <systemd/sd-journal.h>
#endif

#include "tdcrypt/kbs.h"
#include "tdcrypt/store.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum tdc_kbs_log_format log_format = TDC_KBS_LOG_JSON;

static void log_stderr(const char *line)
{
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s\n", line);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

#ifdef TDC_HAVE_JOURNAL
static int log_journal(const char *line)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	char **f;
	size_t n;
	if (tdc_kbs_log_fields(line, &f, &n, &e) < 0)
		return -1;
	struct iovec *iov = calloc(n, sizeof(*iov));
	int r = -1;
	if (iov) {
		for (size_t i = 0; i < n; i++)
			iov[i] = (struct iovec){ .iov_base = f[i], .iov_len = strlen(f[i]) };
		r = sd_journal_sendv(iov, (int)n);
	}
	free(iov);
	tdc_kbs_log_fields_free(f, n);
	return r;
}
#endif

/* Every event is written somewhere: a line the journal refuses goes to stderr as JSON. */
static void log_line(void *arg, const char *line)
{
	(void)arg;
#ifdef TDC_HAVE_JOURNAL
	if (log_format == TDC_KBS_LOG_JOURNAL && log_journal(line) >= 0)
		return;
#endif
	if (log_format == TDC_KBS_LOG_TEXT) {
		struct tdc_error e;
		char *text = malloc(TDC_KBS_LOG_LINE_MAX);
		if (text && tdc_kbs_log_text(line, text, TDC_KBS_LOG_LINE_MAX, &e) >= 0) {
			log_stderr(text);
			free(text);
			return;
		}
		free(text);
	}
	log_stderr(line);
}

/* auto: the journal when systemd connected stderr to it (systemd.exec(5), $JOURNAL_STREAM) */
static int log_setup(const struct tdc_kbs_config *c, struct tdc_error *e)
{
	struct stat st;
	if (tdc_kbs_log_format_parse(c->log ? c->log : "auto", &log_format, e) < 0)
		return -1;
	if (log_format == TDC_KBS_LOG_AUTO)
		log_format = fstat(2, &st) == 0 &&
					     tdc_kbs_journal_stream_is(getenv("JOURNAL_STREAM"),
								       (uint64_t)st.st_dev,
								       (uint64_t)st.st_ino) ?
				     TDC_KBS_LOG_JOURNAL :
				     TDC_KBS_LOG_JSON;
#ifndef TDC_HAVE_JOURNAL
	if (log_format == TDC_KBS_LOG_JOURNAL) {
		if (c->log && !strcmp(c->log, "journal"))
			return TDC_FAIL(e, TDC_E_USAGE,
					"--log journal: this tdcrypt-kbs is built without libsystemd");
		log_format = TDC_KBS_LOG_JSON;
	}
#endif
	return 0;
}

static int64_t wall_clock(void *arg)
{
	(void)arg;
	return (int64_t)time(NULL);
}

/* The first event, before the fork: it also opens libsystemd's journal socket here, which
 * the network process inherits, since its sandbox makes no new UNIX sockets. */
static void log_starting(const struct tdc_kbs_config *c)
{
	char ts[32], line[256];
	time_t t = c->has_at ? (time_t)c->at : time(NULL);
	struct tm tm;
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	snprintf(line, sizeof(line),
		 "{\"ts\":\"%s\",\"level\":\"info\",\"event\":\"starting\",\"version\":\"%s\","
		 "\"log\":\"%s\"}",
		 ts, TDC_VERSION_STRING,
		 log_format == TDC_KBS_LOG_JOURNAL ? "journal" :
		 log_format == TDC_KBS_LOG_TEXT	   ? "text" :
						     "json");
	log_line(NULL, line);
}

static int saved_argc;
static char **saved_argv;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		tdc_kbs_daemon_reload();
	else if (sig == SIGUSR2)
		tdc_kbs_daemon_drain();
	else
		tdc_kbs_daemon_stop();
}

/* SIGHUP: the configuration as at the start, from the file and the flags read again. */
static int reload_config(void *arg, struct tdc_kbs_config *c, struct tdc_error *e)
{
	bool help = false;
	(void)arg;
	return tdc_kbs_config_args(saved_argc, saved_argv, c, &help, e);
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
	tdc_error_clear(&e);
	struct tdc_store *s = NULL;
	struct stat st;
	char where[512];
	if (!c->master_key || !c->db) {
		fprintf(stderr, "tdcrypt-kbs: init needs --master-key and --db\n");
		return 3;
	}
	tdc_store_display(c->db, where, sizeof(where));
	/* never over an existing store, running or not: that is what restore is for */
	if (tdc_store_exists(c->db)) {
		fprintf(stderr,
			"tdcrypt-kbs: init: the store %s exists; init only makes a new one "
			"(check it: tdcrypt-kbs check; replace it: tdcrypt-kbs restore)\n",
			where);
		return 1;
	}
	if (stat(c->master_key, &st) == 0) {
		fprintf(stderr, "tdcrypt-kbs: init: %s exists; keeping it\n", c->master_key);
	} else if (tdc_store_master_key_create(c->master_key, &e) < 0) {
		return fail("init: master key", &e);
	} else {
		fprintf(stderr, "tdcrypt-kbs: created master key %s (0600); back it up offline\n",
			c->master_key);
	}
	if (tdc_store_open_ex(c->db, c->master_key, TDC_STORE_EXCLUSIVE, &s, &e) < 0)
		return fail("init: store", &e);
	tdc_store_close(s);
	fprintf(stderr, "tdcrypt-kbs: store %s ready\n", where);
	return 0;
}

static int do_check(const struct tdc_kbs_config *c, bool full)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	struct tdc_store *s = NULL;
	struct tdc_store_health h;
	if (tdc_store_open(c->db, c->master_key, &s, &e) < 0)
		return fail("check", &e);
	int r = tdc_store_check(s, full, &h, &e);
	tdc_store_close(s);
	if (r < 0)
		return fail("check", &e);
	char where[512];
	printf("store %s: %s ok, master key ok, schema %d, %zu secrets (all open), "
	       "%zu audit records (last %lld)\n",
	       tdc_store_display(c->db, where, sizeof(where)), full ? "integrity_check" : "quick_check", h.schema, h.secrets,
	       h.audit_records, (long long)h.last_audit_id);
	return 0;
}

/* The subcommand's own flags (--full, --out FILE, --from FILE) are taken out of argv
 * before the broker's flags are parsed. */
static const char *take_flag(int *argc, char **argv, const char *flag, bool with_value)
{
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], flag) != 0 || (with_value && i + 1 >= *argc))
			continue;
		const char *v = with_value ? argv[i + 1] : argv[i];
		int n = with_value ? 2 : 1;
		for (int j = i; j + n <= *argc; j++)
			argv[j] = argv[j + n];
		*argc -= n;
		return v;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct tdc_kbs_config cfg;
	struct tdc_error e;
	tdc_error_clear(&e);
	bool help = false;
	const char *cmd = NULL, *out = NULL, *from = NULL;
	bool full = false;

	/* no core dumps and no ptrace by other users: the process holds secrets */
	prctl(PR_SET_DUMPABLE, 0);
	if (argc >= 2 && (!strcmp(argv[1], "init") || !strcmp(argv[1], "check") ||
			  !strcmp(argv[1], "backup") || !strcmp(argv[1], "restore"))) {
		cmd = argv[1];
		argv++;
		argc--;
		full = take_flag(&argc, argv, "--full", false) != NULL;
		out = take_flag(&argc, argv, "--out", true);
		from = take_flag(&argc, argv, "--from", true);
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("tdcrypt-kbs %s\n", TDC_VERSION_STRING);
		return 0;
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
	if (cmd) {
		int rc = 0;
		if (!cfg.db || (strcmp(cmd, "backup") && !cfg.master_key)) {
			fprintf(stderr, "tdcrypt-kbs %s: needs --db%s (or --config)\n", cmd,
				strcmp(cmd, "backup") ? " and --master-key" : "");
			rc = 3;
		} else if (!strcmp(cmd, "init")) {
			rc = do_init(&cfg);
		} else if (!strcmp(cmd, "check")) {
			rc = do_check(&cfg, full);
		} else if (!strcmp(cmd, "backup")) {
			if (!out) {
				fprintf(stderr, "tdcrypt-kbs backup: needs --out FILE\n");
				rc = 3;
			} else if (tdc_store_backup(cfg.db, out, &e) < 0) {
				rc = fail("backup", &e);
			} else {
				fprintf(stderr, "tdcrypt-kbs: backup of %s written to %s (0600; its "
						"secrets open only with the master key)\n",
					cfg.db, out);
			}
		} else if (!from) {
			fprintf(stderr, "tdcrypt-kbs restore: needs --from FILE\n");
			rc = 3;
		} else if (tdc_store_restore(from, cfg.db, cfg.master_key, &e) < 0) {
			rc = fail("restore", &e);
		} else {
			fprintf(stderr, "tdcrypt-kbs: %s restored from %s (checked whole)\n", cfg.db,
				from);
		}
		tdc_kbs_config_free(&cfg);
		return rc;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	if (log_setup(&cfg, &e) < 0) {
		int rc = fail("configuration", &e);
		tdc_kbs_config_free(&cfg);
		return rc;
	}
	saved_argc = argc;
	saved_argv = argv;
	struct tdc_kbs_hooks hooks = {
		.log = log_line, .now = wall_clock, .arg = NULL, .reload = reload_config
	};
	log_starting(&cfg);
	if (cfg.sim_root && *cfg.sim_root)
		fprintf(stderr,
			"tdcrypt-kbs: WARNING: TRUSTING THE SIMULATOR ROOT CA %s INSTEAD OF "
			"INTEL'S. Simulated quotes will be accepted. Testing only!\n",
			cfg.sim_root);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	/* the keeper here, the network process forked and sandboxed (lib/kbs/daemon.c) */
	int rc = tdc_kbs_daemon(&cfg, &hooks, &e) < 0 ? fail("broker", &e) : 0;
	tdc_kbs_config_free(&cfg);
	return rc;
}
