/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's counters and their two renderings: JSON for the admin socket's
 * "metrics" op (tdcrypt broker metrics) and the Prometheus text exposition format
 * 0.0.4 for the metrics listener (PROTOCOL.md section 9). Both read the same atomics;
 * nothing here comes from a request but counts, so neither rendering can carry a
 * secret ID, a peer or a reason text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kbs/kbs-int.h"
#include "util/wr.h"

/* 0.5 ms .. 10 s: a warm verification is about 1 ms, a PCCS fetch up to its timeout */
const uint32_t kbs_hist_bounds_us[KBS_HIST_BUCKETS] = {
	500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000, 10000000,
};

void kbs_hist_add(struct kbs_hist *h, int64_t us)
{
	if (us < 0)
		us = 0;
	size_t i = 0;
	while (i < KBS_HIST_BUCKETS && (uint64_t)us > kbs_hist_bounds_us[i])
		i++;
	atomic_fetch_add(&h->n[i], 1);
	atomic_fetch_add(&h->sum_us, (uint64_t)us);
}

static const char *const hs_names[KBS_HS__N] = {
	[KBS_HS_TIMEOUT] = "timeout",
	[KBS_HS_NO_CERTIFICATE] = "no_certificate",
	[KBS_HS_CERTIFICATE] = "certificate_refused",
	[KBS_HS_PROTOCOL] = "protocol",
	[KBS_HS_CLOSED] = "closed",
};

const char *kbs_hs_class_name(enum kbs_hs_class c)
{
	return (unsigned)c < KBS_HS__N ? hs_names[c] : "protocol";
}

static const char *const sop_names[KBS_SOP__N] = {
	[KBS_SOP_POLICY] = "policy",	   [KBS_SOP_RELEASE] = "release",
	[KBS_SOP_AUDIT] = "audit",	   [KBS_SOP_CACHE_GET] = "cache_get",
	[KBS_SOP_CACHE_PUT] = "cache_put", [KBS_SOP_PING] = "ping",
};

const char *kbs_store_op_name(enum kbs_store_op op)
{
	return (unsigned)op < KBS_SOP__N ? sop_names[op] : "?";
}

static uint64_t get(const _Atomic uint64_t *v)
{
	return atomic_load(v);
}

/* The reasons a decision can be denied with (every protocol code but ok and the
 * handshake, which has no response). */
static bool is_denial(enum kbs_reason r)
{
	return r != KBS_OK && r != KBS_HANDSHAKE;
}

/* One snapshot of a histogram: buckets, their total and the sum. */
struct hsnap {
	uint64_t n[KBS_HIST_BUCKETS + 1], count;
	double sum_s;
};

static void snap(const struct kbs_hist *h, struct hsnap *s)
{
	s->count = 0;
	for (size_t i = 0; i <= KBS_HIST_BUCKETS; i++) {
		s->n[i] = get(&h->n[i]);
		s->count += s->n[i];
	}
	s->sum_s = (double)get(&h->sum_us) / 1e6;
}

/* ---- JSON ---- */

static json_object *hist_json(const struct kbs_hist *h)
{
	struct hsnap s;
	snap(h, &s);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "count", json_object_new_int64((int64_t)s.count));
	json_object_object_add(o, "sum_seconds", json_object_new_double(s.sum_s));
	return o;
}

json_object *kbs_metrics_json(const struct kbs_metrics *m)
{
	uint64_t hs_failed = 0, denied = 0;
	json_object *by_class = json_object_new_object(), *by_reason = json_object_new_object();
	for (int c = 0; c < KBS_HS__N; c++) {
		uint64_t v = get(&m->handshake[c]);
		if (c != KBS_HS_TIMEOUT)
			hs_failed += v;
		json_object_object_add(by_class, hs_names[c], json_object_new_int64((int64_t)v));
	}
	for (int r = 0; r < KBS__REASONS; r++) {
		if (!is_denial((enum kbs_reason)r) || r == KBS_BUSY)
			continue;
		uint64_t v = get(&m->denied[r]);
		denied += v;
		json_object_object_add(by_reason, kbs_reason_code((enum kbs_reason)r),
				       json_object_new_int64((int64_t)v));
	}
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
		{ "accepted", get(&m->accepted) },
		{ "refused_limit", get(&m->refused_limit) },
		{ "refused_source", get(&m->refused_source) },
		{ "busy", get(&m->busy) },
		{ "evicted_handshake", get(&m->evicted_handshake) },
		{ "evicted_idle", get(&m->evicted_idle) },
		{ "handshake_failed", hs_failed },
		{ "handshake_timeout", get(&m->handshake[KBS_HS_TIMEOUT]) },
		{ "released", get(&m->released) },
		{ "denied", denied },
		{ "unauthenticated", get(&m->unauthenticated) },
		{ "audit_sampled", get(&m->audit_sampled) },
		{ "audit_skipped", get(&m->audit_skipped) },
		{ "log_suppressed", get(&m->log_suppressed) },
		{ "memory_trims", get(&m->memory_trims) },
		{ "metrics_refused", get(&m->ops_refused) },
		{ "open", get(&m->open) },
		{ "open_busy", get(&m->open_busy) },
		{ "peak", get(&m->peak) },
		{ "queue", get(&m->queue) },
		{ "draining", get(&m->draining) },
	};
	json_object *o = json_object_new_object();
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		json_object_object_add(o, f[i].name, json_object_new_int64((int64_t)f[i].v));
	json_object_object_add(o, "handshake_failed_by_class", by_class);
	json_object_object_add(o, "denied_by_reason", by_reason);
	json_object_object_add(o, "verification", hist_json(&m->verify));
	json_object *st = json_object_new_object();
	for (int i = 0; i < KBS_SOP__N; i++)
		json_object_object_add(st, sop_names[i], hist_json(&m->store[i]));
	json_object_object_add(o, "store_ops", st);
	return o;
}

/* ---- Prometheus text format 0.0.4 ---- */

static void head(struct tdc_wr *w, const char *name, const char *type, const char *help)
{
	tdc_wr_fmt(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct tdc_wr *w, const char *name, const char *type, const char *help,
		uint64_t v)
{
	head(w, name, type, help);
	tdc_wr_fmt(w, "%s %llu\n", name, (unsigned long long)v);
}

/* label: "" or `key="value",` (the trailing comma joins it to le) */
static void hist(struct tdc_wr *w, const char *name, const char *label, const struct kbs_hist *h)
{
	struct hsnap s;
	uint64_t cum = 0;
	snap(h, &s);
	for (size_t i = 0; i < KBS_HIST_BUCKETS; i++) {
		cum += s.n[i];
		tdc_wr_fmt(w, "%s_bucket{%sle=\"%g\"} %llu\n", name, label,
			   (double)kbs_hist_bounds_us[i] / 1e6, (unsigned long long)cum);
	}
	size_t ln = strlen(label);
	/* the label without its trailing comma, for _sum and _count */
	char bare[64];
	snprintf(bare, sizeof(bare), "%.*s", ln ? (int)ln - 1 : 0, label);
	tdc_wr_fmt(w, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label, (unsigned long long)s.count);
	tdc_wr_fmt(w, "%s_sum%s%s%s %.6f\n", name, ln ? "{" : "", bare, ln ? "}" : "", s.sum_s);
	tdc_wr_fmt(w, "%s_count%s%s%s %llu\n", name, ln ? "{" : "", bare, ln ? "}" : "",
		   (unsigned long long)s.count);
}

char *kbs_metrics_prometheus(const struct kbs_metrics *m, size_t *len)
{
	struct tdc_wr w;
	uint8_t *out = NULL;
	size_t n = 0;
	const char *name;
	tdc_wr_init_alloc(&w, 256 * 1024);

	one(&w, "tdcrypt_kbs_releases_total", "counter",
	    "Keys released, each after its audit record was durable.", get(&m->released));
	name = "tdcrypt_kbs_denials_total";
	head(&w, name, "counter", "Requests refused, by the protocol's reason code.");
	for (int r = 0; r < KBS__REASONS; r++)
		if (is_denial((enum kbs_reason)r))
			tdc_wr_fmt(&w, "%s{reason=\"%s\"} %llu\n", name,
				   kbs_reason_code((enum kbs_reason)r),
				   (unsigned long long)(r == KBS_BUSY ? get(&m->busy)
								      : get(&m->denied[r])));
	name = "tdcrypt_kbs_handshake_failures_total";
	head(&w, name, "counter", "TLS handshakes that did not finish, by class.");
	for (int c = 0; c < KBS_HS__N; c++)
		tdc_wr_fmt(&w, "%s{class=\"%s\"} %llu\n", name, hs_names[c],
			   (unsigned long long)get(&m->handshake[c]));
	one(&w, "tdcrypt_kbs_unauthenticated_refusals_total", "counter",
	    "Refusals before a quote verified (anyone can cause them; sampled into the audit).",
	    get(&m->unauthenticated));
	name = "tdcrypt_kbs_unauthenticated_audit_total";
	head(&w, name, "counter", "Unauthenticated refusals written to the audit trail or not.");
	tdc_wr_fmt(&w, "%s{result=\"sampled\"} %llu\n%s{result=\"skipped\"} %llu\n", name,
		   (unsigned long long)get(&m->audit_sampled), name,
		   (unsigned long long)get(&m->audit_skipped));
	one(&w, "tdcrypt_kbs_connections_accepted_total", "counter",
	    "TCP connections taken into a slot.", get(&m->accepted));
	one(&w, "tdcrypt_kbs_connections_refused_total", "counter",
	    "Connections closed at accept: no slot and no room in the busy lane.",
	    get(&m->refused_limit));
	one(&w, "tdcrypt_kbs_connections_refused_per_source_total", "counter",
	    "Of the refused connections, those over the per-source limit.",
	    get(&m->refused_source));
	name = "tdcrypt_kbs_connections_evicted_total";
	head(&w, name, "counter", "Connections closed to make room for a new one.");
	tdc_wr_fmt(&w, "%s{state=\"handshake\"} %llu\n%s{state=\"idle\"} %llu\n", name,
		   (unsigned long long)get(&m->evicted_handshake), name,
		   (unsigned long long)get(&m->evicted_idle));
	name = "tdcrypt_kbs_open_connections";
	head(&w, name, "gauge", "Open connections (normal slots and the busy lane).");
	tdc_wr_fmt(&w, "%s{lane=\"normal\"} %llu\n%s{lane=\"busy\"} %llu\n", name,
		   (unsigned long long)get(&m->open), name, (unsigned long long)get(&m->open_busy));
	one(&w, "tdcrypt_kbs_open_connections_peak", "gauge",
	    "Most connections open at once since the start.", get(&m->peak));
	one(&w, "tdcrypt_kbs_queue_depth", "gauge", "Requests waiting for a worker.",
	    get(&m->queue));
	one(&w, "tdcrypt_kbs_draining", "gauge", "1 while the broker drains (SIGUSR2).",
	    get(&m->draining));
	one(&w, "tdcrypt_kbs_memory_trims_total", "counter",
	    "Times free memory was given back to the system after a flood.",
	    get(&m->memory_trims));
	one(&w, "tdcrypt_kbs_log_lines_suppressed_total", "counter",
	    "Log lines left out by the rate limit.", get(&m->log_suppressed));
	one(&w, "tdcrypt_kbs_metrics_connections_refused_total", "counter",
	    "Connections to the metrics listener closed over its connection cap.",
	    get(&m->ops_refused));
	name = "tdcrypt_kbs_verification_duration_seconds";
	head(&w, name, "histogram",
	     "The release decision: evidence, quote verification, event log, policy.");
	hist(&w, name, "", &m->verify);
	name = "tdcrypt_kbs_store_operation_duration_seconds";
	head(&w, name, "histogram", "Store operations through the keeper, by operation.");
	for (int i = 0; i < KBS_SOP__N; i++) {
		char label[40];
		snprintf(label, sizeof(label), "op=\"%s\",", sop_names[i]);
		hist(&w, name, label, &m->store[i]);
	}
	tdc_wr_u8(&w, 0);
	if (tdc_wr_finish(&w, &out, &n, NULL) < 0)
		return NULL;
	*len = n - 1;
	return (char *)out;
}
