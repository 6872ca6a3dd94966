/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's log formats. The events are the hooks' JSON lines (one object each, never a
 * secret); the sink in kbs/main.c writes them as they are (json), as one line of text
 * (text), or as structured journal fields (journal). Pure functions: lib/ never logs.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "kbs/kbs-int.h"

static const char *const log_names[] = {
	[TDC_KBS_LOG_AUTO] = "auto",
	[TDC_KBS_LOG_JSON] = "json",
	[TDC_KBS_LOG_TEXT] = "text",
	[TDC_KBS_LOG_JOURNAL] = "journal",
};

int tdc_kbs_log_format_parse(const char *name, enum tdc_kbs_log_format *out,
			     struct tdc_error *e)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (name && !strcmp(name, log_names[i])) {
			*out = (enum tdc_kbs_log_format)i;
			return 0;
		}
	return TDC_FAILF(e, TDC_E_USAGE, "bad log format", "'%s' (auto, json, text or journal)",
			 name ? name : "");
}

/* systemd's rule (systemd.exec(5), $JOURNAL_STREAM): "DEV:INODE" of the stream that stderr
 * is connected to, both decimal; anything else (a redirected stderr) is not the journal. */
bool tdc_kbs_journal_stream_is(const char *env, uint64_t dev, uint64_t ino)
{
	char want[64];
	if (!env || !*env)
		return false;
	snprintf(want, sizeof(want), "%llu:%llu", (unsigned long long)dev, (unsigned long long)ino);
	return !strcmp(env, want);
}

struct sbuf {
	char *p;
	size_t len, cap;
	bool over;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
	if (b->over || b->len + n + 1 > b->cap) {
		b->over = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void puts_(struct sbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* key=value; a value that is not plain printable ASCII without spaces, quotes or '=' is
 * quoted and escaped, so that no value (a peer's, an agent's) can make a line or a field
 * of its own. */
static void put_value(struct sbuf *b, const char *v)
{
	bool plain = *v != 0;
	for (const char *c = v; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '"' || *c == '=' || *c == '\\')
			plain = false;
	if (plain) {
		puts_(b, v);
		return;
	}
	puts_(b, "\"");
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		char esc[8];
		if (*c == '"' || *c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*c;
			put(b, esc, 2);
		} else if (*c < ' ' || *c >= 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", *c);
			puts_(b, esc);
		} else {
			put(b, (const char *)c, 1);
		}
	}
	puts_(b, "\"");
}

static const char *str_of(json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static int parse_line(const char *line, json_object **o, struct tdc_error *e)
{
	*o = json_tokener_parse(line);
	if (!*o || !json_object_is_type(*o, json_type_object)) {
		json_object_put(*o);
		*o = NULL;
		return TDC_FAIL(e, TDC_E_FORMAT, "a log line is not a JSON object");
	}
	return 0;
}

static const char *field(json_object *o, const char *k)
{
	json_object *v;
	return json_object_object_get_ex(o, k, &v) && v ? str_of(v) : "";
}

/* "EVENT k=v ..." (with_head: "TS LEVEL EVENT k=v ...") */
static void text_of(json_object *o, bool with_head, struct sbuf *b)
{
	if (with_head) {
		puts_(b, field(o, "ts"));
		puts_(b, " ");
		puts_(b, field(o, "level"));
		puts_(b, " ");
	}
	put_value(b, field(o, "event"));
	json_object_object_foreach(o, key, val)
	{
		if (!val || !strcmp(key, "ts") || !strcmp(key, "level") || !strcmp(key, "event"))
			continue;
		puts_(b, " ");
		puts_(b, key);
		puts_(b, "=");
		put_value(b, str_of(val));
	}
}

int tdc_kbs_log_text(const char *json_line, char *out, size_t cap, struct tdc_error *e)
{
	json_object *o;
	struct sbuf b = { out, 0, cap, false };
	if (!cap)
		return TDC_FAIL(e, TDC_E_INTERNAL, "no room for a log line");
	out[0] = 0;
	TDC_GUARD(parse_line(json_line, &o, e));
	text_of(o, true, &b);
	json_object_put(o);
	if (b.over)
		return TDC_FAIL(e, TDC_E_FORMAT, "a log line too long for its text form");
	return (int)b.len;
}

/* syslog(3) levels: the events' "level" names, "WARNING" (the testing-only warnings) too */
static int priority_of(const char *level)
{
	if (!strcasecmp(level, "error"))
		return 3;
	if (!strcasecmp(level, "warning"))
		return 4;
	if (!strcasecmp(level, "info"))
		return 6;
	return 5;
}

static char *dup_field(const char *name, const char *value)
{
	size_t n = strlen(name) + 1 + strlen(value) + 1;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s=%s", name, value);
	return s;
}

void tdc_kbs_log_fields_free(char **fields, size_t n)
{
	for (size_t i = 0; fields && i < n; i++)
		free(fields[i]);
	free(fields);
}

int tdc_kbs_log_fields(const char *json_line, char ***fields, size_t *n, struct tdc_error *e)
{
	json_object *o;
	char msg[TDC_KBS_LOG_LINE_MAX], pri[4];
	struct sbuf b = { msg, 0, sizeof(msg), false };
	*fields = NULL;
	*n = 0;
	TDC_GUARD(parse_line(json_line, &o, e));
	text_of(o, false, &b);
	size_t cap = (size_t)json_object_object_length(o) + 4, k = 0;
	char **f = calloc(cap, sizeof(*f));
	bool ok = f != NULL && !b.over;
	snprintf(pri, sizeof(pri), "%d", priority_of(field(o, "level")));
	if (ok) {
		f[k++] = dup_field("MESSAGE", msg);
		f[k++] = dup_field("PRIORITY", pri);
		f[k++] = dup_field("SYSLOG_IDENTIFIER", "tdcrypt-kbs");
	}
	json_object_object_foreach(o, key, val)
	{
		if (!ok || !val || !strcmp(key, "level") || k >= cap)
			continue;
		/* journal field names: [A-Z0-9_], at most 64 characters */
		char name[65] = "TDCRYPT_";
		size_t j = strlen(name);
		for (const char *c = key; *c && j < sizeof(name) - 1; c++)
			name[j++] = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c) : '_';
		name[j] = 0;
		f[k++] = dup_field(name, str_of(val));
	}
	for (size_t i = 0; i < k; i++)
		ok = ok && f[i];
	json_object_put(o);
	if (!ok) {
		tdc_kbs_log_fields_free(f, k);
		return b.over ? TDC_FAIL(e, TDC_E_FORMAT, "a log line too long for the journal")
			      : TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	*fields = f;
	*n = k;
	return 0;
}
