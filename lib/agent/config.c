/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent's config: a JSON file in the initramfs (covered by the launch
 * measurement), plus a few kernel command line overrides. Member list and
 * semantics: agent/README.md.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent-int.h"
#include "util/json.h"
#include "tdcrypt/ratls.h"
#include "util/util.h"

#define DEF_TOTAL_MS 120000u
#define DEF_ATTEMPT_MS 45000u
#define DEF_CONNECT_MS 5000u
#define DEF_BACKOFF_INITIAL_MS 500u
#define DEF_BACKOFF_MAX_MS 10000u
/* Sanity bounds on timeouts, in seconds. */
#define MAX_TIMEOUT_S 86400

static const char *const providers[] = {
    [TDC_PROVIDER_AUTO] = "auto",
    [TDC_PROVIDER_CONFIGFS] = "configfs",
    [TDC_PROVIDER_TDX_GUEST] = "tdx_guest",
    [TDC_PROVIDER_SIM] = "sim",
};

const char *tdc_agent_provider_name(enum tdc_agent_provider p)
{
	return (unsigned)p < sizeof(providers) / sizeof(providers[0]) ? providers[p] : "?";
}

static int provider_parse(const char *s, size_t len, enum tdc_agent_provider *out,
			  struct tdc_error *e)
{
	for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++) {
		if (strlen(providers[i]) == len && !memcmp(s, providers[i], len)) {
			*out = (enum tdc_agent_provider)i;
			return 0;
		}
	}
	if (len == 5 && !memcmp(s, "vsock", 5)) {
		*out = TDC_PROVIDER_TDX_GUEST;
		return 0;
	}
	return TDC_FAILF(e, TDC_E_FORMAT, "unknown quote provider", "'%.*s'",
			 (int)(len > 32 ? 32 : len), s);
}

static bool host_char_ok(char ch)
{
	return isalnum((unsigned char)ch) || ch == '-' || ch == '.' || ch == '_';
}

int tdc_agent_broker_parse(const char *s, size_t len, struct tdc_agent_broker *b,
			   struct tdc_error *e)
{
	const char *host = s, *port = NULL;
	size_t hlen, plen = 0;

	memset(b, 0, sizeof(*b));
	if (len == 0)
		return TDC_FAIL(e, TDC_E_FORMAT, "empty broker address");
	if (s[0] == '[') {
		const char *end = memchr(s, ']', len);
		if (!end)
			return TDC_FAIL(e, TDC_E_FORMAT, "broker address: missing ']'");
		host = s + 1;
		hlen = (size_t)(end - host);
		size_t rest = len - (size_t)(end - s) - 1;
		if (rest > 0) {
			if (end[1] != ':')
				return TDC_FAIL(e, TDC_E_FORMAT, "broker address: junk after ']'");
			port = end + 2;
			plen = rest - 1;
		}
	} else {
		const char *colon = memchr(s, ':', len);
		hlen = colon ? (size_t)(colon - s) : len;
		if (colon) {
			port = colon + 1;
			plen = len - hlen - 1;
			if (memchr(port, ':', plen))
				return TDC_FAIL(e, TDC_E_FORMAT,
						"broker address: IPv6 literals need brackets");
		}
	}
	if (hlen == 0 || hlen > TDC_AGENT_HOST_MAX)
		return TDC_FAILF(e, TDC_E_FORMAT, "broker address: bad host length", "%zu", hlen);
	memcpy(b->host, host, hlen);
	b->host[hlen] = '\0';

	uint8_t tmp[16];
	if (inet_pton(AF_INET, b->host, tmp) == 1 || inet_pton(AF_INET6, b->host, tmp) == 1) {
		b->is_ip = true;
	} else {
		if (s[0] == '[')
			return TDC_FAIL(e, TDC_E_FORMAT, "broker address: bad IPv6 literal");
		for (size_t i = 0; i < hlen; i++)
			if (!host_char_ok(b->host[i]))
				return TDC_FAILF(e, TDC_E_FORMAT, "broker address: bad host name",
						 "character %zu", i);
	}
	if (!port) {
		b->port = TDC_RATLS_DEFAULT_PORT;
		return 0;
	}
	if (plen == 0 || plen > 5)
		return TDC_FAIL(e, TDC_E_FORMAT, "broker address: bad port");
	unsigned long v = 0;
	for (size_t i = 0; i < plen; i++) {
		if (!isdigit((unsigned char)port[i]))
			return TDC_FAIL(e, TDC_E_FORMAT, "broker address: bad port");
		v = v * 10 + (unsigned long)(port[i] - '0');
	}
	if (v == 0 || v > 65535)
		return TDC_FAIL(e, TDC_E_FORMAT, "broker address: port out of range");
	b->port = (uint16_t)v;
	return 0;
}

bool tdc_agent_secret_id_ok(const char *s, size_t len)
{
	if (len == 0 || len > TDC_AGENT_SECRET_ID_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

static int only_members(json_object *obj, const char *parent, const char *const *allowed,
			struct tdc_error *e)
{
	json_object_object_foreach (obj, key, val) {
		(void)val;
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok |= !strcmp(key, allowed[i]);
		if (!ok)
			return TDC_FAILF(e, TDC_E_FORMAT, "unknown config member", "%s%s%s",
					 parent ? parent : "", parent ? "." : "", key);
	}
	return 0;
}

static int dup_str(json_object *obj, const char *parent, const char *key, bool required, char **out,
		   struct tdc_error *e)
{
	json_object *v;
	const char *s;
	size_t len;
	TDC_GUARD(tdc_json_field(obj, parent, key, json_type_string, required, &v, e));
	if (!v)
		return 0;
	TDC_GUARD(tdc_json_str(obj, parent, key, 4096, &s, &len, e));
	if (len == 0)
		return TDC_FAILF(e, TDC_E_FORMAT, "empty string", "%s", key);
	free(*out);
	*out = strdup(s);
	return *out ? 0 : TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
}

static int timeout_s(json_object *obj, const char *key, uint32_t *ms, struct tdc_error *e)
{
	json_object *v;
	int64_t s;
	TDC_GUARD(tdc_json_field(obj, "timeouts", key, json_type_int, false, &v, e));
	if (!v)
		return 0;
	TDC_GUARD(tdc_json_int(obj, "timeouts", key, 1, MAX_TIMEOUT_S, &s, e));
	*ms = (uint32_t)s * 1000u;
	return 0;
}

static int backoff_ms(json_object *obj, const char *key, uint32_t *ms, struct tdc_error *e)
{
	json_object *v;
	int64_t n;
	TDC_GUARD(tdc_json_field(obj, "backoff", key, json_type_int, false, &v, e));
	if (!v)
		return 0;
	TDC_GUARD(tdc_json_int(obj, "backoff", key, 1, 600000, &n, e));
	*ms = (uint32_t)n;
	return 0;
}

static int parse_brokers(json_object *root, struct tdc_agent_config *c, struct tdc_error *e)
{
	json_object *arr;
	size_t n;
	TDC_GUARD(
	    tdc_json_array(root, NULL, "brokers", true, 1, TDC_AGENT_MAX_BROKERS, &arr, &n, e));
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(v, json_type_string))
			return TDC_FAILF(e, TDC_E_FORMAT, "broker is not a string", "brokers[%zu]",
					 i);
		TDC_GUARD(tdc_agent_broker_parse(json_object_get_string(v),
						 (size_t)json_object_get_string_len(v),
						 &c->brokers[i], e));
	}
	c->n_brokers = n;
	return 0;
}

static int parse_pins(json_object *root, struct tdc_agent_config *c, struct tdc_error *e)
{
	json_object *arr;
	size_t n;
	TDC_GUARD(tdc_json_array(root, NULL, "broker_spki_sha256", false, 1, TDC_AGENT_MAX_PINS,
				 &arr, &n, e));
	for (size_t i = 0; arr && i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(v, json_type_string))
			return TDC_FAILF(e, TDC_E_FORMAT, "pin is not a string",
					 "broker_spki_sha256[%zu]", i);
		TDC_GUARD(tdc_hex_decode(json_object_get_string(v),
					 (size_t)json_object_get_string_len(v), c->pins[i], 32,
					 "broker_spki_sha256", e));
	}
	c->n_pins = arr ? n : 0;
	return 0;
}

static int parse_luks(json_object *root, struct tdc_agent_config *c, struct tdc_error *e)
{
	static const char *const allowed[] = {"device", "name", "header_sha256", "keyslot", NULL};
	json_object *l, *v;
	int64_t slot;

	TDC_GUARD(tdc_json_field(root, NULL, "luks", json_type_object, true, &l, e));
	TDC_GUARD(only_members(l, "luks", allowed, e));
	TDC_GUARD(dup_str(l, "luks", "device", true, &c->luks_device, e));
	TDC_GUARD(dup_str(l, "luks", "name", true, &c->luks_name, e));
	for (const char *p = c->luks_name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
			return TDC_FAIL(e, TDC_E_FORMAT, "luks.name: bad mapping name");
	if (strlen(c->luks_name) > 127)
		return TDC_FAIL(e, TDC_E_LIMIT, "luks.name too long");
	TDC_GUARD(tdc_json_hex(l, "luks", "header_sha256", c->header_sha256, 32, e));
	TDC_GUARD(tdc_json_field(l, "luks", "keyslot", json_type_int, false, &v, e));
	if (v) {
		TDC_GUARD(tdc_json_int(l, "luks", "keyslot", 0, 31, &slot, e));
		c->keyslot = (int)slot;
	}
	return 0;
}

void tdc_agent_config_defaults(struct tdc_agent_config *c)
{
	memset(c, 0, sizeof(*c));
	c->provider = TDC_PROVIDER_AUTO;
	c->total_timeout_ms = DEF_TOTAL_MS;
	c->attempt_timeout_ms = DEF_ATTEMPT_MS;
	c->connect_timeout_ms = DEF_CONNECT_MS;
	c->backoff_initial_ms = DEF_BACKOFF_INITIAL_MS;
	c->backoff_max_ms = DEF_BACKOFF_MAX_MS;
}

static int parse_machine(json_object *root, struct tdc_agent_config *c, struct tdc_error *e);

static int parse_root(json_object *root, struct tdc_agent_config *c, struct tdc_error *e)
{
	static const char *const allowed[] = {
	    "brokers", "broker_spki_sha256", "broker_ca", "secret_id",
	    "luks",    "provider",           "timeouts",  "backoff",
	    "sim_dir", "tpm_log",            "tsm_root",  "acpi_tables", "debug",
	    NULL};
	const char *s;
	size_t len;

	TDC_GUARD(only_members(root, NULL, allowed, e));
	TDC_GUARD(parse_brokers(root, c, e));
	TDC_GUARD(parse_pins(root, c, e));
	TDC_GUARD(dup_str(root, NULL, "broker_ca", false, &c->broker_ca, e));
	TDC_GUARD(tdc_json_str(root, NULL, "secret_id", TDC_AGENT_SECRET_ID_MAX, &s, &len, e));
	if (!tdc_agent_secret_id_ok(s, len))
		return TDC_FAIL(e, TDC_E_FORMAT,
				"secret_id: 1-64 of [A-Za-z0-9._-], not starting with '.'");
	memcpy(c->secret_id, s, len + 1);
	TDC_GUARD(parse_luks(root, c, e));
	return parse_machine(root, c, e);
}

/* What the machine says, not the disk: how to get a quote, how long to try. */
static int parse_machine(json_object *root, struct tdc_agent_config *c, struct tdc_error *e)
{
	static const char *const t_allowed[] = {"total_s", "attempt_s", "connect_s", NULL};
	static const char *const b_allowed[] = {"initial_ms", "max_ms", NULL};
	json_object *v;

	TDC_GUARD(tdc_json_field(root, NULL, "provider", json_type_string, false, &v, e));
	if (v)
		TDC_GUARD(provider_parse(json_object_get_string(v),
					 (size_t)json_object_get_string_len(v), &c->provider, e));
	TDC_GUARD(tdc_json_field(root, NULL, "timeouts", json_type_object, false, &v, e));
	if (v) {
		TDC_GUARD(only_members(v, "timeouts", t_allowed, e));
		TDC_GUARD(timeout_s(v, "total_s", &c->total_timeout_ms, e));
		TDC_GUARD(timeout_s(v, "attempt_s", &c->attempt_timeout_ms, e));
		TDC_GUARD(timeout_s(v, "connect_s", &c->connect_timeout_ms, e));
	}
	TDC_GUARD(tdc_json_field(root, NULL, "backoff", json_type_object, false, &v, e));
	if (v) {
		TDC_GUARD(only_members(v, "backoff", b_allowed, e));
		TDC_GUARD(backoff_ms(v, "initial_ms", &c->backoff_initial_ms, e));
		TDC_GUARD(backoff_ms(v, "max_ms", &c->backoff_max_ms, e));
	}
	TDC_GUARD(dup_str(root, NULL, "sim_dir", false, &c->sim_dir, e));
	TDC_GUARD(dup_str(root, NULL, "tpm_log", false, &c->tpm_log, e));
	TDC_GUARD(dup_str(root, NULL, "tsm_root", false, &c->tsm_root, e));
	TDC_GUARD(dup_str(root, NULL, "acpi_tables", false, &c->acpi_tables, e));
	TDC_GUARD(tdc_json_field(root, NULL, "debug", json_type_boolean, false, &v, e));
	if (v)
		c->debug = json_object_get_boolean(v);
	return 0;
}

int tdc_agent_config_parse(const uint8_t *json, size_t len, struct tdc_agent_config *c,
			   struct tdc_error *e)
{
	json_object *root;
	tdc_agent_config_defaults(c);
	TDC_GUARD(tdc_json_parse_object(json, len, TDC_MAX_AGENT_CONFIG, "agent config", &root, e));
	int rc = parse_root(root, c, e);
	json_object_put(root);
	if (rc < 0)
		tdc_agent_config_free(c);
	return rc;
}

int tdc_agent_config_machine(const uint8_t *json, size_t len, struct tdc_agent_config *c,
			     struct tdc_error *e)
{
	static const char *const allowed[] = {"provider", "timeouts", "backoff", "sim_dir",
					      "tpm_log",  "tsm_root", "acpi_tables", "debug", NULL};
	json_object *root;
	TDC_GUARD(tdc_json_parse_object(json, len, TDC_MAX_AGENT_CONFIG, "machine config", &root,
					e));
	int rc = only_members(root, NULL, allowed, e);
	if (rc == 0)
		rc = parse_machine(root, c, e);
	json_object_put(root);
	return rc;
}

int tdc_agent_config_load(const char *path, struct tdc_agent_config *c, struct tdc_error *e)
{
	uint8_t *buf;
	size_t len;
	tdc_agent_config_defaults(c);
	TDC_GUARD(tdc_file_read(path, TDC_MAX_AGENT_CONFIG, &buf, &len, e));
	int rc = tdc_agent_config_parse(buf, len, c, e);
	free(buf);
	return rc;
}

int tdc_agent_config_check(const struct tdc_agent_config *c, struct tdc_error *e)
{
	if (c->n_brokers == 0)
		return TDC_FAIL(e, TDC_E_USAGE, "no broker configured");
	if (c->n_pins == 0 && !c->broker_ca)
		return TDC_FAIL(
		    e, TDC_E_USAGE,
		    "neither broker_spki_sha256 nor broker_ca: the broker cannot be authenticated");
	if (c->provider == TDC_PROVIDER_SIM && !c->sim_dir)
		return TDC_FAIL(e, TDC_E_USAGE, "provider sim needs sim_dir");
	if (c->connect_timeout_ms > c->attempt_timeout_ms ||
	    c->attempt_timeout_ms > c->total_timeout_ms)
		return TDC_FAIL(e, TDC_E_USAGE,
				"timeouts must satisfy connect <= attempt <= total");
	if (c->backoff_initial_ms > c->backoff_max_ms)
		return TDC_FAIL(e, TDC_E_USAGE, "backoff.initial_ms > backoff.max_ms");
	return 0;
}

void tdc_agent_config_free(struct tdc_agent_config *c)
{
	free(c->broker_ca);
	free(c->luks_device);
	free(c->luks_name);
	free(c->sim_dir);
	free(c->tpm_log);
	free(c->tsm_root);
	free(c->acpi_tables);
	c->broker_ca = c->luks_device = c->luks_name = c->sim_dir = c->tpm_log = c->tsm_root =
	    c->acpi_tables = NULL;
}

/* ---- kernel command line ---- */

static int opt_brokers(struct tdc_agent_config *c, const char *v, size_t len, struct tdc_error *e)
{
	struct tdc_agent_broker tmp[TDC_AGENT_MAX_BROKERS];
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && v[i] != ',')
			continue;
		if (n == TDC_AGENT_MAX_BROKERS)
			return TDC_FAILF(e, TDC_E_LIMIT, "tdcrypt.broker: too many brokers",
					 "limit %d", TDC_AGENT_MAX_BROKERS);
		TDC_GUARD(tdc_agent_broker_parse(v + start, i - start, &tmp[n++], e));
		start = i + 1;
	}
	memcpy(c->brokers, tmp, sizeof(tmp));
	c->n_brokers = n;
	return 0;
}

static int opt_timeout(struct tdc_agent_config *c, const char *v, size_t len, struct tdc_error *e)
{
	unsigned long s = 0;
	if (len == 0 || len > 5)
		return TDC_FAIL(e, TDC_E_FORMAT, "tdcrypt.timeout: seconds expected");
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)v[i]))
			return TDC_FAIL(e, TDC_E_FORMAT, "tdcrypt.timeout: seconds expected");
		s = s * 10 + (unsigned long)(v[i] - '0');
	}
	if (s == 0 || s > MAX_TIMEOUT_S)
		return TDC_FAIL(e, TDC_E_FORMAT, "tdcrypt.timeout: out of range");
	c->total_timeout_ms = (uint32_t)s * 1000u;
	if (c->attempt_timeout_ms > c->total_timeout_ms)
		c->attempt_timeout_ms = c->total_timeout_ms;
	if (c->connect_timeout_ms > c->attempt_timeout_ms)
		c->connect_timeout_ms = c->attempt_timeout_ms;
	return 0;
}

static int apply_word(struct tdc_agent_config *c, const char *w, size_t len, struct tdc_error *e)
{
	static const char pfx[] = "tdcrypt.";
	if (len < sizeof(pfx) - 1 || memcmp(w, pfx, sizeof(pfx) - 1) != 0)
		return 0;
	w += sizeof(pfx) - 1;
	len -= sizeof(pfx) - 1;
	const char *eq = memchr(w, '=', len);
	size_t klen = eq ? (size_t)(eq - w) : len;
	const char *v = eq ? eq + 1 : NULL;
	size_t vlen = eq ? len - klen - 1 : 0;

#define KEY(s) (klen == sizeof(s) - 1 && !memcmp(w, s, klen))
	if (KEY("debug")) {
		c->debug = !v || (vlen == 1 && v[0] == '1');
		return 0;
	}
	if (KEY("broker"))
		return v ? opt_brokers(c, v, vlen, e)
			 : TDC_FAIL(e, TDC_E_FORMAT, "tdcrypt.broker needs a value");
	if (KEY("provider"))
		return v ? provider_parse(v, vlen, &c->provider, e)
			 : TDC_FAIL(e, TDC_E_FORMAT, "tdcrypt.provider needs a value");
	if (KEY("timeout"))
		return v ? opt_timeout(c, v, vlen, e)
			 : TDC_FAIL(e, TDC_E_FORMAT, "tdcrypt.timeout needs a value");
#undef KEY
	return 0; /* other tdcrypt.* words belong to the boot scripts */
}

int tdc_agent_config_cmdline(struct tdc_agent_config *c, const char *s, size_t len,
			     struct tdc_error *e)
{
	size_t i = 0;
	if (len > TDC_MAX_CMDLINE)
		return TDC_FAIL(e, TDC_E_LIMIT, "kernel command line too long");
	while (i < len) {
		while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\0'))
			i++;
		size_t start = i;
		bool quoted = false;
		while (i < len && s[i] != '\0' &&
		       (quoted || (s[i] != ' ' && s[i] != '\t' && s[i] != '\n'))) {
			if (s[i] == '"')
				quoted = !quoted;
			i++;
		}
		if (i > start) {
			/* The kernel strips the quotes of param="value"; so do we, for
			 * tdcrypt.* words only (they never need inner quotes). */
			char word[1024];
			size_t wl = 0;
			if (i - start >= sizeof(word))
				continue;
			for (size_t k = start; k < i; k++)
				if (s[k] != '"')
					word[wl++] = s[k];
			TDC_GUARD(apply_word(c, word, wl, e));
		}
	}
	return 0;
}
