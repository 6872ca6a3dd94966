/* SPDX-License-Identifier: Apache-2.0 */
/* The broker's configuration: a strict JSON file, then command-line flags over it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "util/json.h"
#include "kbs/kbs-int.h"
#include "util/util.h"

const char tdc_kbs_usage[] =
	"usage: tdcrypt-kbs [--config FILE] [options]\n"
	"       tdcrypt-kbs init [--config FILE] [--master-key PATH] [--db PATH]\n"
	"       tdcrypt-kbs check [--full] [--config FILE | --db PATH --master-key PATH]\n"
	"       tdcrypt-kbs backup --out FILE [--config FILE | --db PATH]   (online)\n"
	"       tdcrypt-kbs restore --from FILE [--config FILE | --db PATH --master-key PATH]\n"
	"                         (the broker stopped; the backup is checked first)\n"
	"       tdcrypt-kbs [init|check|backup|restore] --help | --version\n"
	"  --config FILE          JSON config; the options below override it\n"
	"  --listen ADDR:PORT     default 127.0.0.1:50051 ([::1]:PORT for IPv6)\n"
	"  --metrics-listen ADDR:PORT  plain-HTTP /metrics (Prometheus) and /healthz, off by\n"
	"                         default; unauthenticated: bind it to a private address\n"
	"  --cert PEM --key PEM   the broker's TLS certificate (chain) and private key\n"
	"  --db PATH              SQLite store (WAL)\n"
	"  --master-key PATH      32-byte master key file (mode 0600), made by 'init'\n"
	"  --collateral-dir PATH  offline collateral: a bundle directory, a dcap-qvl JSON\n"
	"                         file, or a directory of <FMSPC>/ bundles\n"
	"  --pccs-url URL         PCCS/PCS base URL (v4 API); --pccs-ca FILE, --pccs-timeout-ms N\n"
	"  --admin-socket PATH    local admin socket (default /run/tdcrypt/kbs.sock; '' for none)\n"
	"  --allow-simulator-root PEM  (alias --test-root-ca-for-testing-only)\n"
	"                         trust the SIMULATOR root instead of Intel's: testing only\n"
	"  --at TIME              fixed verification time (RFC 3339 or @UNIX): testing only\n"
	"  --workers N            verification threads (default 4)\n"
	"  --max-connections N    (default 4096)   --queue-max N (default 1024)\n"
	"  --max-connections-per-source N  from one address (default 256)\n"
	"  --handshake-timeout-ms N        to finish TLS (default 3000)\n"
	"  --user NAME            the network process's user (default nobody; the keeper,\n"
	"                         which holds the store and the master key, stays as started)\n"
	"  --min-tcb-eval N       refuse collateral with a lower tcbEvaluationDataNumber\n"
	"  --log FORMAT           auto (default: the journal when stderr is systemd's journal,\n"
	"                         else json), json (one JSON object a line on stderr), text\n"
	"                         (one line of text an event on stderr) or journal (native)\n"
	"signals: HUP reloads (config, certificate, key), USR2 drains (finish the requests\n"
	"in flight, exit 0), TERM/INT stop now\n";

void tdc_kbs_config_init(struct tdc_kbs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->listen = strdup(TDC_KBS_DEFAULT_LISTEN);
	c->admin_socket = strdup(TDC_KBS_DEFAULT_ADMIN_SOCKET);
	c->workers = TDC_KBS_DEFAULT_WORKERS;
	c->max_conns = TDC_KBS_DEFAULT_MAX_CONNS;
	c->queue_max = TDC_KBS_DEFAULT_QUEUE;
	c->max_conns_per_source = TDC_KBS_DEFAULT_MAX_CONNS_PER_SOURCE;
	c->handshake_timeout_ms = TDC_KBS_DEFAULT_HANDSHAKE_MS;
	c->pccs_timeout_ms = TDC_KBS_DEFAULT_PCCS_TIMEOUT_MS;
}

void tdc_kbs_config_free(struct tdc_kbs_config *c)
{
	char **s[] = { &c->listen, &c->metrics_listen, &c->cert, &c->key, &c->db,
		       &c->master_key, &c->collateral_dir, &c->pccs_url, &c->pccs_ca,
		       &c->admin_socket, &c->sim_root, &c->user, &c->log };
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		free(*s[i]);
		*s[i] = NULL;
	}
}

int tdc_kbs_config_copy(struct tdc_kbs_config *dst, const struct tdc_kbs_config *src,
			struct tdc_error *e)
{
	*dst = *src;
	char **s[] = { &dst->listen, &dst->metrics_listen, &dst->cert, &dst->key, &dst->db,
		       &dst->master_key, &dst->collateral_dir, &dst->pccs_url, &dst->pccs_ca,
		       &dst->admin_socket, &dst->sim_root, &dst->user, &dst->log };
	bool ok = true;
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (*s[i] && !(*s[i] = strdup(*s[i])))
			ok = false;
	if (!ok) {
		tdc_kbs_config_free(dst);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	return 0;
}

static bool same_str(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

int tdc_kbs_config_reloadable(const struct tdc_kbs_config *a, const struct tdc_kbs_config *b,
			      struct tdc_error *e)
{
	/* what the processes, sockets, sandbox and collateral were built from at start */
	const struct {
		const char *key;
		bool same;
	} f[] = {
		{ "listen", same_str(a->listen, b->listen) },
		{ "metrics_listen", same_str(a->metrics_listen, b->metrics_listen) },
		{ "db", same_str(a->db, b->db) },
		{ "master_key", same_str(a->master_key, b->master_key) },
		{ "admin_socket", same_str(a->admin_socket, b->admin_socket) },
		{ "user", same_str(a->user, b->user) },
		{ "collateral_dir", same_str(a->collateral_dir, b->collateral_dir) },
		{ "pccs_url", same_str(a->pccs_url, b->pccs_url) },
		{ "pccs_ca", same_str(a->pccs_ca, b->pccs_ca) },
		{ "pccs_timeout_ms", a->pccs_timeout_ms == b->pccs_timeout_ms },
		{ "at", a->has_at == b->has_at && (!a->has_at || a->at == b->at) },
		{ "workers", a->workers == b->workers },
		{ "max_connections", a->max_conns == b->max_conns },
		{ "handshake_timeout_ms", a->handshake_timeout_ms == b->handshake_timeout_ms },
		{ "log", same_str(a->log, b->log) },
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!f[i].same)
			return TDC_FAILF(e, TDC_E_USAGE, "not reloadable: restart the broker",
					 "\"%s\" changed", f[i].key);
	return 0;
}

static int set_str(char **dst, const char *v, struct tdc_error *e)
{
	char *d = strdup(v);
	if (!d)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	free(*dst);
	*dst = d;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out, const char *what,
		      struct tdc_error *e)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return TDC_FAILF(e, TDC_E_USAGE, "bad number", "%s: '%s'", what, s);
	*out = v;
	return 0;
}

static int parse_time(const char *s, int64_t *out, struct tdc_error *e)
{
	if (s[0] == '@') {
		char *end;
		errno = 0;
		long long v = strtoll(s + 1, &end, 10);
		if (errno || end == s + 1 || *end || v < 0)
			return TDC_FAILF(e, TDC_E_USAGE, "bad time", "'%s'", s);
		*out = v;
		return 0;
	}
	return tdc_time_parse(s, out, "at", e);
}

/* Option table shared by the file and the flags. */
enum kind { K_STR, K_UINT, K_TIME };
struct opt {
	const char *key, *flag;
	enum kind kind;
	size_t off;
	unsigned long max;
};
#define OFF(f) offsetof(struct tdc_kbs_config, f)
static const struct opt opts[] = {
	{ "listen", "--listen", K_STR, OFF(listen), 0 },
	{ "metrics_listen", "--metrics-listen", K_STR, OFF(metrics_listen), 0 },
	{ "cert", "--cert", K_STR, OFF(cert), 0 },
	{ "key", "--key", K_STR, OFF(key), 0 },
	{ "db", "--db", K_STR, OFF(db), 0 },
	{ "master_key", "--master-key", K_STR, OFF(master_key), 0 },
	{ "collateral_dir", "--collateral-dir", K_STR, OFF(collateral_dir), 0 },
	{ "pccs_url", "--pccs-url", K_STR, OFF(pccs_url), 0 },
	{ "pccs_ca", "--pccs-ca", K_STR, OFF(pccs_ca), 0 },
	{ "pccs_timeout_ms", "--pccs-timeout-ms", K_UINT, OFF(pccs_timeout_ms), 600000 },
	{ "admin_socket", "--admin-socket", K_STR, OFF(admin_socket), 0 },
	{ "allow_simulator_root", "--allow-simulator-root", K_STR, OFF(sim_root), 0 },
	{ "user", "--user", K_STR, OFF(user), 0 },
	{ NULL, "--test-root-ca-for-testing-only", K_STR, OFF(sim_root), 0 },
	{ "at", "--at", K_TIME, OFF(at), 0 },
	{ "workers", "--workers", K_UINT, OFF(workers), 256 },
	{ "max_connections", "--max-connections", K_UINT, OFF(max_conns), 1000000 },
	{ "queue_max", "--queue-max", K_UINT, OFF(queue_max), 1000000 },
	{ "max_connections_per_source", "--max-connections-per-source", K_UINT,
	  OFF(max_conns_per_source), 1000000 },
	{ "handshake_timeout_ms", "--handshake-timeout-ms", K_UINT, OFF(handshake_timeout_ms),
	  60000 },
	{ "min_tcb_eval_num", "--min-tcb-eval", K_UINT, OFF(min_tcb_eval_num), UINT32_MAX },
	{ "log", "--log", K_STR, OFF(log), 0 },
};

static int apply(const struct opt *o, const char *v, struct tdc_kbs_config *c, struct tdc_error *e)
{
	char *base = (char *)c;
	unsigned long u = 0;
	switch (o->kind) {
	case K_STR:
		if (o->off == OFF(log)) {
			enum tdc_kbs_log_format f;
			TDC_GUARD(tdc_kbs_log_format_parse(v, &f, e));
		}
		return set_str((char **)(base + o->off), v, e);
	case K_UINT:
		TDC_GUARD(parse_uint(v, o->max, &u, o->flag, e));
		if (o->off == OFF(pccs_timeout_ms) || o->off == OFF(min_tcb_eval_num) ||
		    o->off == OFF(handshake_timeout_ms))
			*(uint32_t *)(base + o->off) = (uint32_t)u;
		else
			*(unsigned *)(base + o->off) = (unsigned)u;
		if (o->off == OFF(workers) && u == 0)
			return TDC_FAIL(e, TDC_E_USAGE, "--workers must be at least 1");
		if (o->off == OFF(handshake_timeout_ms) && u < 100)
			return TDC_FAIL(e, TDC_E_USAGE, "--handshake-timeout-ms must be at least 100");
		return 0;
	case K_TIME:
		TDC_GUARD(parse_time(v, &c->at, e));
		c->has_at = true;
		return 0;
	}
	return TDC_FAIL(e, TDC_E_INTERNAL, "bad option kind");
}

int tdc_kbs_config_load(const char *path, struct tdc_kbs_config *c, struct tdc_error *e)
{
	uint8_t *buf = NULL;
	size_t len;
	json_object *o = NULL;
	char num[32];

	TDC_GUARD(tdc_file_read(path, TDC_MAX_KBS_CONFIG, &buf, &len, e));
	int r = tdc_json_parse_object(buf, len, TDC_MAX_KBS_CONFIG, path, &o, e);
	free(buf);
	if (r < 0)
		return r;
	json_object_object_foreach(o, key, val)
	{
		const struct opt *op = NULL;
		for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
			if (opts[i].key && !strcmp(opts[i].key, key))
				op = &opts[i];
		if (!op) {
			r = TDC_FAILF(e, TDC_E_FORMAT, "unknown config key", "%s: \"%s\"", path, key);
			break;
		}
		const char *v;
		if (op->kind == K_UINT) {
			if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0) {
				r = TDC_FAILF(e, TDC_E_FORMAT, "config value must be a number",
					      "%s: \"%s\"", path, key);
				break;
			}
			snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(val));
			v = num;
		} else if (!json_object_is_type(val, json_type_string)) {
			r = TDC_FAILF(e, TDC_E_FORMAT, "config value must be a string", "%s: \"%s\"",
				      path, key);
			break;
		} else {
			v = json_object_get_string(val);
		}
		if ((r = apply(op, v, c, e)) < 0)
			break;
	}
	json_object_put(o);
	return r;
}

int tdc_kbs_config_args(int argc, char **argv, struct tdc_kbs_config *c, bool *help,
			struct tdc_error *e)
{
	*help = false;
	/* the file first, wherever --config appears */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config")) {
			if (i + 1 >= argc)
				return TDC_FAIL(e, TDC_E_USAGE, "--config needs a value");
			TDC_GUARD(tdc_kbs_config_load(argv[++i], c, e));
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			*help = true;
			return 0;
		}
		if (!strcmp(a, "--config")) {
			i++;
			continue;
		}
		const struct opt *op = NULL;
		for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (!strcmp(opts[k].flag, a))
				op = &opts[k];
		if (!op)
			return TDC_FAILF(e, TDC_E_USAGE, "unknown option", "'%s'", a);
		if (i + 1 >= argc)
			return TDC_FAILF(e, TDC_E_USAGE, "option needs a value", "'%s'", a);
		TDC_GUARD(apply(op, argv[++i], c, e));
	}
	return 0;
}

int tdc_kbs_config_check(const struct tdc_kbs_config *c, struct tdc_error *e)
{
	if (!c->cert || !c->key)
		return TDC_FAIL(e, TDC_E_USAGE, "the broker needs --cert and --key");
	if (!c->db || !c->master_key)
		return TDC_FAIL(e, TDC_E_USAGE, "the broker needs --db and --master-key");
	if (!c->collateral_dir && !c->pccs_url)
		return TDC_FAIL(e, TDC_E_USAGE,
				"the broker needs --collateral-dir and/or --pccs-url");
	if (!c->listen)
		return TDC_FAIL(e, TDC_E_USAGE, "no --listen address");
	return 0;
}
