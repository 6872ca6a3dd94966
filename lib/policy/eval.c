/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy evaluation. Every rule is evaluated and recorded (for `policy
 * explain`), not just up to the first failure; the first failure in rule
 * order gives the short reason code. Rule order puts platform trust (simulator,
 * TCB status, advisories) before TD configuration and measurements.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "policy/policy-int.h"
#include "tdcrypt/measure.h"
#include "util/json.h"
#include "util/util.h"

/* 4 platform + 3 attribute + xfam + mrseam + svn + mrservicetd + 8 TD registers */
#define N_RULES 19

/* Growable string; on allocation failure it records oom and stays usable. */
struct sb {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = (b->len + (size_t)n + 1) * 2;
		char *nb = realloc(b->buf, cap);
		if (!nb) {
			b->oom = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Hands over the string (NULL only when out of memory) and leaves b empty for reuse. */
static char *sb_take(struct sb *b)
{
	if (!b->oom && !b->buf)
		sb_add(b, "%s", "");
	char *s = b->buf;
	if (b->oom) {
		free(s);
		s = NULL;
	}
	memset(b, 0, sizeof(*b));
	return s;
}

static void sb_hex(struct sb *b, const uint8_t *v, size_t n)
{
	char hex[2 * TDC_MR_SIZE + 1];
	tdc_hex_encode(v, n, hex);
	sb_add(b, "%s", hex);
}

struct ctx {
	struct tdc_policy_result *res;
	bool oom;
};

static void rule(struct ctx *c, const char *name, bool pass, bool configured, struct sb *expected,
		 struct sb *actual)
{
	struct tdc_policy_rule_result *r = &c->res->rules[c->res->n_rules++];
	r->name = name;
	r->pass = pass;
	r->configured = configured;
	r->expected = sb_take(expected);
	r->actual = sb_take(actual);
	if (!r->expected || !r->actual)
		c->oom = true;
}

static void any_of_hex(struct sb *b, const uint8_t *vals, size_t n, size_t size)
{
	if (n == 0) {
		sb_add(b, "any (not pinned)");
		return;
	}
	sb_add(b, "any of: ");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_add(b, ", ");
		sb_hex(b, vals + i * size, size);
	}
}

static void hex_rule(struct ctx *c, const char *name, const uint8_t *vals, size_t n, size_t size,
		     const uint8_t *claim)
{
	struct sb exp = { 0 }, act = { 0 };
	bool pass = n == 0;
	for (size_t i = 0; i < n && !pass; i++)
		pass = memcmp(vals + i * size, claim, size) == 0;
	any_of_hex(&exp, vals, n, size);
	sb_hex(&act, claim, size);
	rule(c, name, pass, n != 0, &exp, &act);
}

static void advisory_list(struct sb *b, const struct tdc_advisories *a, const char *none)
{
	if (a->n == 0)
		sb_add(b, "%s", none);
	for (size_t i = 0; i < a->n; i++)
		sb_add(b, "%s%s", i ? ", " : "", a->id[i]);
}

static bool advisory_in(const struct tdc_advisories *a, const char *id)
{
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->id[i], id) == 0)
			return true;
	}
	return false;
}

static void platform_rules(struct ctx *c, const struct tdc_policy *p,
			   const struct tdc_policy_input *in)
{
	const struct tdc_verdict *v = in->verdict;
	struct sb exp = { 0 }, act = { 0 };

	sb_add(&exp, "%s", p->allow_simulator ? "hardware or simulator quote" : "hardware quote");
	sb_add(&act, "%s", in->from_simulator ? "simulator quote" : "hardware quote");
	rule(c, "simulator", !in->from_simulator || p->allow_simulator, p->simulator_configured,
	     &exp, &act);

	unsigned st = (unsigned)v->status < TDC_TCB__COUNT ? (unsigned)v->status : TDC_TCB_UNKNOWN;
	sb_add(&exp, "any of: ");
	for (int s = 0, k = 0; s < TDC_TCB__COUNT; s++) {
		if (p->tcb_status[s])
			sb_add(&exp, "%s%s", k++ ? ", " : "", tdc_tcb_status_name(s));
	}
	sb_add(&act, "%s", tdc_tcb_status_name(st));
	/* Revoked cannot be in the policy, but say so here too: never release to it. */
	rule(c, "tcb_status", p->tcb_status[st] && st != TDC_TCB_REVOKED, p->tcb_status_configured,
	     &exp, &act);

	bool pass = true;
	for (size_t i = 0; i < v->advisories.n; i++)
		pass = pass && !advisory_in(&p->refused, v->advisories.id[i]);
	if (p->refused.n)
		sb_add(&exp, "none of: ");
	advisory_list(&exp, &p->refused, "none refused");
	advisory_list(&act, &v->advisories, "no advisories");
	rule(c, "advisories_refused", pass, p->refused.n != 0, &exp, &act);

	pass = true;
	for (size_t i = 0; p->has_allowed_only && i < v->advisories.n; i++)
		pass = pass && advisory_in(&p->allowed_only, v->advisories.id[i]);
	if (p->has_allowed_only) {
		sb_add(&exp, "only: ");
		advisory_list(&exp, &p->allowed_only, "no advisories");
	} else {
		sb_add(&exp, "any");
	}
	advisory_list(&act, &v->advisories, "no advisories");
	rule(c, "advisories_allowed_only", pass, p->has_allowed_only, &exp, &act);
}

static void attr_names(struct sb *b, uint64_t bits)
{
	int k = 0;
	for (unsigned i = 0; i < 64; i++) {
		if (!(bits & (1ull << i)))
			continue;
		const char *name = tdc_td_attribute_name(i);
		if (name)
			sb_add(b, "%s%s", k++ ? ", " : "", name);
		else
			sb_add(b, "%sbit %u (reserved)", k++ ? ", " : "", i);
	}
	if (!k)
		sb_add(b, "none");
}

static void attribute_rules(struct ctx *c, const struct tdc_policy *p, const struct tdc_td_report *td)
{
	uint64_t attrs = tdc_td_attributes(td);
	struct sb exp = { 0 }, act = { 0 };

	sb_add(&exp, "%s", p->allow_debug ? "DEBUG allowed" : "DEBUG clear");
	sb_add(&act, "DEBUG %s", attrs & TDC_TDATTR_DEBUG ? "set" : "clear");
	rule(c, "debug", !(attrs & TDC_TDATTR_DEBUG) || p->allow_debug, p->td_attributes_configured,
	     &exp, &act);

	sb_add(&exp, "%s", p->require_sept_ve_disable ? "SEPT_VE_DISABLE set" : "any");
	sb_add(&act, "SEPT_VE_DISABLE %s", attrs & TDC_TDATTR_SEPT_VE_DISABLE ? "set" : "clear");
	rule(c, "sept_ve_disable",
	     !p->require_sept_ve_disable || (attrs & TDC_TDATTR_SEPT_VE_DISABLE),
	     p->td_attributes_configured, &exp, &act);

	uint64_t other = attrs & ~TDC_TDATTR_OWN_RULES;
	if (p->allow_bits) {
		sb_add(&exp, "other bits only from: ");
		attr_names(&exp, p->allow_bits);
	} else {
		sb_add(&exp, "no other bits");
	}
	sb_hex(&act, td->td_attributes, sizeof(td->td_attributes));
	sb_add(&act, " (");
	attr_names(&act, attrs);
	sb_add(&act, ")");
	rule(c, "td_attributes", (other & ~p->allow_bits) == 0, p->td_attributes_configured, &exp,
	     &act);

	hex_rule(c, "xfam", (const uint8_t *)p->xfam, p->n_xfam, 8, td->xfam);
}

static void module_rules(struct ctx *c, const struct tdc_policy *p, const struct tdc_td_report *td)
{
	struct sb exp = { 0 }, act = { 0 };
	const struct tdc_policy_mr_list *seam = &p->mr[TDC_PMR_MRSEAM];
	hex_rule(c, "mrseam", (const uint8_t *)seam->v, seam->n, TDC_MR_SIZE, td->mrseam);

	bool pass = true;
	if (p->has_min_tee_tcb_svn) {
		for (size_t i = 0; i < sizeof(td->tee_tcb_svn); i++)
			pass = pass && td->tee_tcb_svn[i] >= p->min_tee_tcb_svn[i];
		sb_add(&exp, ">= ");
		sb_hex(&exp, p->min_tee_tcb_svn, sizeof(p->min_tee_tcb_svn));
		sb_add(&exp, " (each byte)");
	} else {
		sb_add(&exp, "any");
	}
	sb_hex(&act, td->tee_tcb_svn, sizeof(td->tee_tcb_svn));
	rule(c, "tee_tcb_svn", pass, p->has_min_tee_tcb_svn, &exp, &act);

	/* A service TD bound to this TD could act on its behalf: refuse unless allowed. */
	pass = !td->is_td15 || !p->mrservicetd_zero || tdc_all_zero(td->mrservicetd, 48);
	sb_add(&exp, "%s", p->mrservicetd_zero ? "all zero" : "any");
	if (td->is_td15)
		sb_hex(&act, td->mrservicetd, sizeof(td->mrservicetd));
	else
		sb_add(&act, "n/a (TD report 1.0)");
	rule(c, "mrservicetd", pass, p->mrservicetd_configured, &exp, &act);
}

static void hex_prefix(struct sb *b, const uint8_t *d)
{
	char hex[2 * TDC_MR_SIZE + 1];
	tdc_hex_encode(d, TDC_MR_SIZE, hex);
	sb_add(b, "%.16s...", hex);
}

static void listed_event(struct sb *b, const struct tdc_policy_event_list *l, size_t k)
{
	sb_add(b, "; event %zu: ", k);
	if (k >= l->n) {
		sb_add(b, "none (the log has more events than the policy lists)");
		return;
	}
	const struct tdc_policy_event *pe = &l->ev[k];
	sb_add(b, "%s%s%s, digest ", pe->role[0] ? pe->role : "",
	       pe->role[0] && pe->what[0] ? " " : "", pe->what[0] ? pe->what : "(no text)");
	for (size_t j = 0; j < pe->n; j++) {
		if (j)
			sb_add(b, " or ");
		hex_prefix(b, pe->digest[j]);
	}
}

static bool listed(const struct tdc_policy_event_list *l, size_t k, const struct tdc_event *ev)
{
	for (size_t j = 0; k < l->n && j < l->ev[k].n; j++)
		if (!memcmp(l->ev[k].digest[j], ev->sha384, TDC_MR_SIZE))
			return true;
	return false;
}

/*
 * "events.rtmrN": the RTMR's events in the replayed log, one to one with the listed ones.
 * A refusal names the first few events that differ, not only the first: a changed kernel
 * command line also changes grub.cfg and the GRUB commands read before it, and the
 * operator wants to see all of them.
 */
#define EVENTS_NAMED 4

static void events_rule(struct ctx *c, const char *name, const struct tdc_policy_event_list *l,
			unsigned rtmr, const struct tdc_evlog *log)
{
	struct sb exp = { 0 }, act = { 0 };
	size_t k = 0, n_bad = 0, bad[EVENTS_NAMED];
	const struct tdc_event *bad_ev[EVENTS_NAMED];

	sb_add(&exp, "%zu events as listed", l->n);
	if (!log) {
		sb_add(&act, "no event log in the evidence (the policy rules on %s's events)", name);
		rule(c, name, false, true, &exp, &act);
		return;
	}
	for (size_t i = 0; i < log->n; i++) {
		const struct tdc_event *ev = &log->ev[i];
		if (ev->type == TDC_EV_NO_ACTION || ev->index != rtmr + 1)
			continue;
		if (!listed(l, k, ev)) {
			if (n_bad < EVENTS_NAMED) {
				bad[n_bad] = k;
				bad_ev[n_bad] = ev;
			}
			n_bad++;
		}
		k++;
	}
	if (n_bad == 0 && k == l->n) {
		sb_add(&act, "%zu events, each with a listed digest", k);
		rule(c, name, true, true, &exp, &act);
		return;
	}
	for (size_t i = 0; i < n_bad && i < EVENTS_NAMED; i++) {
		char desc[80] = ""; /* short: four of them fit the audit record's reason */
		const char *t = tdc_event_type_name(bad_ev[i]->type);
		tdc_event_describe(bad_ev[i], desc, sizeof(desc));
		sb_add(&act, "%sevent %zu is %s '%s', digest ", i ? "; " : "", bad[i],
		       t ? t : "an unknown type", desc);
		hex_prefix(&act, bad_ev[i]->sha384);
		listed_event(&exp, l, bad[i]);
	}
	if (n_bad > EVENTS_NAMED)
		sb_add(&act, "; %zu more differ", n_bad - EVENTS_NAMED);
	if (k < l->n) {
		sb_add(&act, "%sthe log ends after %zu events", n_bad ? "; " : "", k);
		listed_event(&exp, l, k);
	}
	sb_add(&act, " (%zu events in the log)", k);
	rule(c, name, false, true, &exp, &act);
}

static void set_reason(struct tdc_policy_result *res)
{
	for (size_t i = 0; i < res->n_rules; i++) {
		const struct tdc_policy_rule_result *r = &res->rules[i];
		if (r->pass)
			continue;
		res->reason_code = r->name;
		snprintf(res->reason, sizeof(res->reason), "%s: got %s; expected %s", r->name,
			 r->actual, r->expected);
		return;
	}
	res->allowed = true;
}

int tdc_policy_eval(const struct tdc_policy *p, const struct tdc_policy_input *in,
		    struct tdc_policy_result *res, struct tdc_error *e)
{
	if (!res)
		return TDC_FAIL(e, TDC_E_USAGE, "no result");
	memset(res, 0, sizeof(*res));
	if (!p || !in || !in->verdict)
		return TDC_FAIL(e, TDC_E_USAGE, "no policy or verdict");
	res->rules = calloc(N_RULES, sizeof(*res->rules));
	if (!res->rules)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");

	const struct tdc_td_report *td = &in->verdict->td;
	struct ctx c = { .res = res };
	platform_rules(&c, p, in);
	attribute_rules(&c, p, td);
	module_rules(&c, p, td);
	for (int i = TDC_PMR_MRTD; i < TDC_PMR__COUNT; i++) {
		const struct tdc_policy_mr_list *l = &p->mr[i];
		unsigned rtmr = (unsigned)(i - TDC_PMR_RTMR0);
		if (i >= TDC_PMR_RTMR0 && i <= TDC_PMR_RTMR3 && p->events[rtmr].n)
			events_rule(&c, tdc_policy_mrs[i].name, &p->events[rtmr], rtmr, in->event_log);
		else
			hex_rule(&c, tdc_policy_mrs[i].name, (const uint8_t *)l->v, l->n,
				 TDC_MR_SIZE, (const uint8_t *)td + tdc_policy_mrs[i].offset);
	}
	if (c.oom) {
		tdc_policy_result_free(res);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	set_reason(res);
	if (!res->allowed)
		return TDC_FAILF(e, TDC_E_POLICY, "refused by policy", "%s", res->reason);
	return 0;
}

void tdc_policy_result_free(struct tdc_policy_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_rules; i++) {
		free(res->rules[i].expected);
		free(res->rules[i].actual);
	}
	free(res->rules);
	memset(res, 0, sizeof(*res));
}

void tdc_policy_result_print(const struct tdc_policy_result *res, FILE *out)
{
	for (size_t i = 0; i < res->n_rules; i++) {
		const struct tdc_policy_rule_result *r = &res->rules[i];
		if (r->configured)
			fprintf(out, "%s  %s\n", r->pass ? "PASS" : "FAIL", r->name);
		else
			fprintf(out, "%s  %-24s (default)\n", r->pass ? "PASS" : "FAIL", r->name);
		fprintf(out, "      expected: %s\n      actual:   %s\n", r->expected, r->actual);
	}
	if (res->allowed)
		fprintf(out, "decision: release\n");
	else
		fprintf(out, "decision: deny (%s)\n  %s\n", res->reason_code ? res->reason_code : "?",
			res->reason);
}


static json_object *rule_json(const struct tdc_policy_rule_result *r)
{
	json_object *o = json_object_new_object();
	if (!o || tdc_json_add(o, "name", json_object_new_string(r->name)) < 0 ||
	    tdc_json_add(o, "pass", json_object_new_boolean(r->pass)) < 0 ||
	    tdc_json_add(o, "configured", json_object_new_boolean(r->configured)) < 0 ||
	    tdc_json_add(o, "expected", json_object_new_string(r->expected)) < 0 ||
	    tdc_json_add(o, "actual", json_object_new_string(r->actual)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int tdc_policy_result_to_json(const struct tdc_policy_result *res, char **out,
			      struct tdc_error *e)
{
	if (!res || !out)
		return TDC_FAIL(e, TDC_E_USAGE, "no result");
	*out = NULL;
	json_object *o = json_object_new_object();
	json_object *rules = json_object_new_array();
	bool ok = o && rules;
	for (size_t i = 0; ok && i < res->n_rules; i++) {
		json_object *r = rule_json(&res->rules[i]);
		ok = r && json_object_array_add(rules, r) == 0;
		if (!ok)
			json_object_put(r);
	}
	ok = ok && tdc_json_add(o, "allowed", json_object_new_boolean(res->allowed)) == 0;
	if (ok && res->reason_code)
		ok = tdc_json_add(o, "reason_code", json_object_new_string(res->reason_code)) == 0;
	else if (ok)
		ok = json_object_object_add(o, "reason_code", NULL) == 0;
	ok = ok && tdc_json_add(o, "reason", json_object_new_string(res->reason)) == 0;
	if (ok) {
		ok = json_object_object_add(o, "rules", rules) == 0;
		if (ok)
			rules = NULL;
	}
	const char *s = ok ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE)
			   : NULL;
	*out = s ? strdup(s) : NULL;
	json_object_put(rules);
	json_object_put(o);
	if (!*out)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	return 0;
}
