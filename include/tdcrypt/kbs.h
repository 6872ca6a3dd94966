/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key broker (tdcrypt-kbs): configuration, and the server object that
 * runs the event loop (TLS 1.3 mutual, RA-TLS evidence, quote verification,
 * per-secret policy, release, audit) and the local admin socket.
 * Protocol: docs/PROTOCOL.md. The library never logs and never reads the
 * wall clock for a decision: the front end passes a log sink and a clock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

#define TDC_KBS_DEFAULT_LISTEN "127.0.0.1:50051"
#define TDC_KBS_DEFAULT_ADMIN_SOCKET "/run/tdcrypt/kbs.sock"
#define TDC_KBS_DEFAULT_WORKERS 4u
#define TDC_KBS_DEFAULT_MAX_CONNS 4096u
#define TDC_KBS_DEFAULT_MAX_CONNS_PER_SOURCE 256u
#define TDC_KBS_DEFAULT_HANDSHAKE_MS 3000u
#define TDC_KBS_DEFAULT_QUEUE 1024u
#define TDC_KBS_DEFAULT_PCCS_TIMEOUT_MS 10000u

struct tdc_kbs_config {
	char *listen;          /* "ADDR:PORT" or "[V6]:PORT"; port 0 = ephemeral */
	char *metrics_listen;  /* plain-HTTP /metrics and /healthz; NULL or "": none */
	char *cert, *key;      /* broker TLS certificate (chain) and key, PEM files */
	char *db;              /* SQLite store path */
	char *master_key;      /* 32-byte master key file (0600) */
	char *collateral_dir;  /* offline bundle: a directory bundle, a dcap-qvl JSON
	                        * file, or a directory of <fmspc-hex>/ bundles */
	char *pccs_url;        /* e.g. https://pccs.example:8081 (v4 API below it) */
	char *pccs_ca;         /* CA file for the PCCS's TLS certificate (optional) */
	uint32_t pccs_timeout_ms;
	char *admin_socket;    /* "" or NULL: no admin socket */
	char *sim_root;        /* PEM/DER of the simulator root CA: trust it (tests only) */
	char *user;            /* the network process runs as this user (default "nobody") */
	bool has_at;           /* verification time fixed (tests with real vectors only) */
	int64_t at;
	unsigned workers;
	unsigned max_conns;
	unsigned queue_max;
	unsigned max_conns_per_source; /* connections from one address (all its ports) */
	uint32_t handshake_timeout_ms;  /* to finish TLS after the TCP accept */
	uint32_t min_tcb_eval_num;
	char *log;             /* the log format: auto (default), json, text or journal */
};

/* Defaults (listen 127.0.0.1:50051, 4 workers, ...). */
void tdc_kbs_config_init(struct tdc_kbs_config *c);
void tdc_kbs_config_free(struct tdc_kbs_config *c);

/*
 * Reads a JSON config file (strict: unknown keys and wrong types are refused,
 * with the key named). Keys: listen, cert, key, db, master_key,
 * collateral_dir, pccs_url, pccs_ca, pccs_timeout_ms, admin_socket,
 * allow_simulator_root, at, workers, max_connections, queue_max,
 * max_connections_per_source, handshake_timeout_ms, min_tcb_eval_num, user, metrics_listen,
 * log.
 * Values overwrite those already in c.
 */
int tdc_kbs_config_load(const char *path, struct tdc_kbs_config *c, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * Command line: --config FILE is applied first, then every other flag
 * overrides it. argv[0] is skipped. Unknown flags are TDC_E_USAGE.
 * *help is set for -h/--help.
 */
int tdc_kbs_config_args(int argc, char **argv, struct tdc_kbs_config *c, bool *help,
			struct tdc_error *e) TDC_MUST_USE;
/* Checks that the config can run a broker (cert, key, db, master key, collateral). */
int tdc_kbs_config_check(const struct tdc_kbs_config *c, struct tdc_error *e) TDC_MUST_USE;
/* A deep copy of src into dst (dst is overwritten, not freed). */
int tdc_kbs_config_copy(struct tdc_kbs_config *dst, const struct tdc_kbs_config *src,
			struct tdc_error *e) TDC_MUST_USE;
/*
 * What a reload (SIGHUP) may change: cert, key, allow_simulator_root, min_tcb_eval_num,
 * max_connections_per_source, queue_max. Anything else that differs between the running
 * configuration and next is TDC_E_USAGE, naming the key (it needs a restart).
 */
int tdc_kbs_config_reloadable(const struct tdc_kbs_config *running,
			      const struct tdc_kbs_config *next, struct tdc_error *e) TDC_MUST_USE;
/* Usage text of the flags. */
extern const char tdc_kbs_usage[];

/* ---- the server ---- */

struct tdc_kbs_hooks {
	/* One complete JSON object per call, no newline; called from several threads.
	 * Never carries a secret. NULL: discard. */
	void (*log)(void *arg, const char *json_line);
	/* Seconds since the epoch for verification and audit records. NULL: the
	 * config's fixed time (has_at) must be set. */
	int64_t (*now)(void *arg);
	void *arg;
	/* The daemon's reload (SIGHUP): fill c (initialised by the caller) with the
	 * configuration as it is now, e.g. the file and the flags read again. NULL: the
	 * running configuration, its files (certificate, key, roots) read again. */
	int (*reload)(void *arg, struct tdc_kbs_config *c, struct tdc_error *e);
};

/* ---- the log sink's formats (kbs/main.c): the same events, the hooks' JSON lines ---- */

enum tdc_kbs_log_format {
	TDC_KBS_LOG_AUTO,    /* journal when stderr is the journal ($JOURNAL_STREAM), else json */
	TDC_KBS_LOG_JSON,    /* the JSON lines as they are, on stderr */
	TDC_KBS_LOG_TEXT,    /* "TS LEVEL EVENT key=value ...", values quoted and escaped */
	TDC_KBS_LOG_JOURNAL, /* native journal entries with fields (tdc_kbs_log_fields) */
};
#define TDC_KBS_LOG_LINE_MAX 16384
/* "auto", "json", "text", "journal"; anything else (NULL too) is TDC_E_USAGE. */
int tdc_kbs_log_format_parse(const char *name, enum tdc_kbs_log_format *out,
			     struct tdc_error *e) TDC_MUST_USE;
/* systemd's rule: $JOURNAL_STREAM is "DEV:INODE" of stderr (both decimal) when stderr
 * is the journal's stream; false for NULL, "" or another file. */
bool tdc_kbs_journal_stream_is(const char *env, uint64_t dev, uint64_t ino);
/* The text form of one event, NUL-terminated in out; its length, or < 0. */
int tdc_kbs_log_text(const char *json_line, char *out, size_t cap, struct tdc_error *e)
	TDC_MUST_USE;
/* The journal fields of one event, "NAME=value" each: MESSAGE (the text form without
 * time and level), PRIORITY (syslog level of "level"), SYSLOG_IDENTIFIER=tdcrypt-kbs and
 * TDCRYPT_<KEY> for every other key (TDCRYPT_EVENT, TDCRYPT_REQUEST_ID, TDCRYPT_SECRET_ID,
 * ...). Free with tdc_kbs_log_fields_free. */
int tdc_kbs_log_fields(const char *json_line, char ***fields, size_t *n, struct tdc_error *e)
	TDC_MUST_USE;
void tdc_kbs_log_fields_free(char **fields, size_t n);

struct tdc_kbs;

/*
 * The broker in one process (tests, embedding): opens the store, starts the keeper
 * (store, master key, audit, admin socket) as threads, loads the TLS credentials and
 * the trust anchor, binds the listening socket and starts the worker threads.
 */
int tdc_kbs_new(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h,
		struct tdc_kbs **out, struct tdc_error *e) TDC_MUST_USE;
/* The bound TCP port (useful with port 0). */
int tdc_kbs_port(const struct tdc_kbs *k);
/* The metrics listener's port, or 0 when there is none. */
int tdc_kbs_metrics_port(const struct tdc_kbs *k);
/*
 * Reload (in-process mode): next (NULL: the running configuration) is checked with
 * tdc_kbs_config_reloadable, its certificate, key and roots are read and handed to the
 * network side, which applies them to new connections; established ones keep theirs.
 * Any failure keeps the running configuration whole. Logs "reloaded" or
 * "reload_failed". Call it from another thread while tdc_kbs_run runs (the loop applies it).
 */
int tdc_kbs_reload(struct tdc_kbs *k, const struct tdc_kbs_config *next, struct tdc_error *e)
	TDC_MUST_USE;
/*
 * Drain: stop accepting, close connections that are not in a request (handshakes, idle
 * keep-alive), finish the requests in flight, then tdc_kbs_run returns 0. /healthz
 * answers 503 meanwhile. Async-signal-safe, callable from any thread.
 */
void tdc_kbs_drain(struct tdc_kbs *k);
/* Lower-case hex SHA-256 of the trusted simulator root's DER, or NULL. */
const char *tdc_kbs_sim_root_sha256(const struct tdc_kbs *k);
/*
 * The daemon (tdcrypt-kbs): privilege-separated. The process that calls it becomes the
 * keeper: it opens the store and the master key, serves the admin socket and answers
 * the network process, which it forks first (before any secret is in memory). The
 * network process does TLS, HTTP, quote verification and the PCCS as cfg->user, with no
 * new privileges, Landlock and seccomp, and checks that it can open neither the store
 * nor the master key. Returns when the network process ended (after
 * tdc_kbs_daemon_stop, or if it died: then TDC_E_INTERNAL).
 */
int tdc_kbs_daemon(const struct tdc_kbs_config *c, const struct tdc_kbs_hooks *h,
		   struct tdc_error *e) TDC_MUST_USE;
/* Async-signal-safe: asks a running tdc_kbs_daemon to stop (now). */
void tdc_kbs_daemon_stop(void);
/* Async-signal-safe: asks it to reload (SIGHUP; hooks.reload, then tdc_kbs_reload's rules). */
void tdc_kbs_daemon_reload(void);
/* Async-signal-safe: asks it to drain (SIGUSR2; tdc_kbs_drain) and then return 0. */
void tdc_kbs_daemon_drain(void);
/* Runs the event loop until tdc_kbs_stop. */
int tdc_kbs_run(struct tdc_kbs *k, struct tdc_error *e) TDC_MUST_USE;
/* Asks the loop to stop; async-signal-safe, callable from any thread. */
void tdc_kbs_stop(struct tdc_kbs *k);
/* Stops the workers, closes every connection and the store. */
void tdc_kbs_free(struct tdc_kbs *k);
