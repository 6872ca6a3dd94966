/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The release decision for one request (docs/PROTOCOL.md §5.1): evidence and
 * binding of the client certificate, DCAP verification of its quote at the
 * broker's time, then the secret's policy and the release. Runs on a worker
 * thread. The verdict is kept for the connection; the policy is evaluated on
 * every request, since each may name another secret.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "kbs/kbs-int.h"
#include "tdcrypt/measure.h"
#include "tdcrypt/policy.h"
#include "tdcrypt/ratls.h"
#include "util/util.h"

void kbs_peer_free(struct kbs_peer *p)
{
	if (!p)
		return;
	tdc_verdict_free(&p->v);
	memset(p, 0, sizeof(*p));
}

void kbs_decision_free(struct kbs_decision *d)
{
	if (!d)
		return;
	tdc_secret_free(&d->key);
}

static void set_err(char *out, size_t cap, const char *what, const struct tdc_error *e)
{
	char buf[400];
	snprintf(out, cap, "%s: %s", what, tdc_error_format(e, buf, sizeof(buf)));
}

/* SHA-256 of the TD report as carried in the quote (the claims the policy sees). */
static void claims_digest(const struct tdc_quote *q, char out[65])
{
	struct tdc_rd sb = q->signed_bytes, body;
	uint8_t md[32];
	sb.pos = 0;
	if (tdc_rd_skip(&sb, TDC_QUOTE_HEADER_SIZE + (q->version >= 5 ? 6u : 0u), "header",
			NULL) < 0) {
		snprintf(out, 65, "-");
		return;
	}
	tdc_rd_rest(&sb, &body);
	SHA256(tdc_rd_ptr(&body), tdc_rd_len(&body), md);
	tdc_hex_encode(md, sizeof(md), out);
}

static enum kbs_reason verify_reason(int rc)
{
	switch (rc) {
	case TDC_E_EXPIRED:
	case TDC_E_STALE:
		return KBS_COLLATERAL_UNAVAILABLE;
	case TDC_E_TCB_NOT_SUPPORTED:
	case TDC_E_REVOKED:
		return KBS_TCB_REFUSED;
	case TDC_E_NOMEM:
	case TDC_E_INTERNAL:
	case TDC_E_CRYPTO:
	case TDC_E_USAGE:
		return KBS_INTERNAL;
	default:
		return KBS_QUOTE_INVALID;
	}
}

/* Steps 2-5 of §5.1, once per connection. */
static void check_peer(struct kbs_ctx *x, X509 *cert, struct kbs_peer *p, int64_t now)
{
	struct tdc_ratls_evidence ev;
	struct tdc_quote q;
	struct tdc_collateral c;
	struct kbs_coll_info ci = { 0 };
	struct tdc_error e;
	uint8_t fmspc[6];
	bool processor = false;
	char fm[13];
	int rc;

	p->checked = true;
	snprintf(p->verdict, sizeof(p->verdict), "-");
	snprintf(p->claims_digest, sizeof(p->claims_digest), "-");
	tdc_error_clear(&e);
	if (!cert) {
		p->reason = KBS_EVIDENCE_INVALID;
		snprintf(p->detail, sizeof(p->detail), "no client certificate");
		return;
	}
	if (tdc_ratls_cert_evidence(cert, &ev, &e) < 0) {
		p->reason = KBS_EVIDENCE_INVALID;
		set_err(p->detail, sizeof(p->detail), "evidence extension", &e);
		snprintf(p->verdict, sizeof(p->verdict), "%s", tdc_err_name(e.code));
		return;
	}
	p->version = ev.claims.version;
	if (ev.claims.version != TDC_RATLS_VERSION) {
		p->reason = KBS_UNSUPPORTED_VERSION;
		snprintf(p->detail, sizeof(p->detail),
			 "evidence tdcrypt-version %u, this broker knows %u", ev.claims.version,
			 TDC_RATLS_VERSION);
		return;
	}
	tdc_error_clear(&e);
	/* the handshake proved possession of the certificate's key (CertificateVerify over
	 * a transcript containing it): its self-signature is not needed (PROTOCOL.md 5.1) */
	if (tdc_ratls_cert_binding(cert, NULL, 0, &ev, &e) < 0 ||
	    tdc_ratls_check_quote(&ev, &q, &e) < 0) {
		p->reason = KBS_EVIDENCE_INVALID;
		set_err(p->detail, sizeof(p->detail), "evidence binding", &e);
		snprintf(p->verdict, sizeof(p->verdict), "%s", tdc_err_name(e.code));
		return;
	}
	claims_digest(&q, p->claims_digest);

	if (kbs_coll_quote_fmspc(x->coll, &q, fmspc, &processor, &e) < 0) {
		p->reason = KBS_QUOTE_INVALID;
		set_err(p->detail, sizeof(p->detail), "quote PCK certificate", &e);
		snprintf(p->verdict, sizeof(p->verdict), "%s", tdc_err_name(e.code));
		return;
	}
	tdc_hex_encode(fmspc, 6, fm);
	memset(&c, 0, sizeof(c));
	if (kbs_coll_get(x->coll, fmspc, processor, now, &c, &ci, &e) < 0) {
		p->reason = KBS_COLLATERAL_UNAVAILABLE;
		set_err(p->detail, sizeof(p->detail), "collateral", &e);
		snprintf(p->verdict, sizeof(p->verdict), "%s", tdc_err_name(e.code));
		return;
	}
	if (now >= ci.next_update) {
		char t1[32], t2[32];
		p->reason = KBS_COLLATERAL_UNAVAILABLE;
		snprintf(p->detail, sizeof(p->detail),
			 "collateral for FMSPC %s (%s) expired: nextUpdate %s, now %s", fm,
			 ci.source, tdc_time_format(ci.next_update, t1, sizeof(t1)),
			 tdc_time_format(now, t2, sizeof(t2)));
		snprintf(p->verdict, sizeof(p->verdict), "%s", tdc_err_name(TDC_E_EXPIRED));
		tdc_collateral_free(&c);
		return;
	}
	tdc_error_clear(&e);
	rc = tdc_verify_quote(x->verifier, tdc_rd_ptr(&ev.quote), tdc_rd_len(&ev.quote), &c, now,
			      &p->v, &e);
	tdc_collateral_free(&c);
	if (rc < 0) {
		char what[96];
		p->reason = verify_reason(rc);
		snprintf(what, sizeof(what), "quote verification (FMSPC %s, collateral from %s)",
			 fm, ci.source);
		set_err(p->detail, sizeof(p->detail), what, &e);
		snprintf(p->verdict, sizeof(p->verdict), "%s", tdc_err_name(rc));
		return;
	}
	p->reason = KBS_OK;
	snprintf(p->verdict, sizeof(p->verdict), "%s", tdc_tcb_status_name(p->v.status));
	snprintf(p->detail, sizeof(p->detail), "quote verified: %s (FMSPC %s, collateral from %s)",
		 p->verdict, fm, ci.source);
}

void kbs_decide(struct kbs_ctx *x, X509 *cert, struct kbs_peer *p,
		const struct kbs_http_req *req, int64_t now, struct kbs_decision *d)
{
	struct tdc_error e;
	struct tdc_policy *pol = NULL;
	struct tdc_policy_result res;
	struct tdc_evlog log = { 0 };
	bool has_log = false;
	char *pjson = NULL;
	const char *secret_id = req->secret_id;
	unsigned version = req->version;
	int rc;

	memset(d, 0, sizeof(*d));
	memset(&res, 0, sizeof(res));
	if (!p->checked)
		check_peer(x, cert, p, now);
	snprintf(d->verdict, sizeof(d->verdict), "%s", p->verdict);
	snprintf(d->claims_digest, sizeof(d->claims_digest), "%s", p->claims_digest);
	/* a genuine quote refused for its TCB level is still a TD that is known to be one */
	d->authenticated = p->reason == KBS_OK || p->reason == KBS_TCB_REFUSED;
	if (p->reason != KBS_OK) {
		d->reason = p->reason;
		snprintf(d->detail, sizeof(d->detail), "%s", p->detail);
		return;
	}
	if (version != p->version) {
		d->reason = KBS_UNSUPPORTED_VERSION;
		snprintf(d->detail, sizeof(d->detail), "request path version %u, evidence version %u",
			 version, p->version);
		return;
	}

	/* the request's CC event log: only a log that replays to the verified quote's RTMRs
	 * lets a policy rule on its events */
	if (req->event_log) {
		tdc_error_clear(&e);
		if (tdc_evlog_verify(req->event_log, req->event_log_len, req->ccel_table,
				     (const uint8_t(*)[TDC_SHA384_LEN])p->v.td.rtmr, &log, &e) < 0) {
			d->reason = KBS_EVIDENCE_INVALID;
			set_err(d->detail, sizeof(d->detail), "event log", &e);
			return;
		}
		has_log = true;
	}

	/* the secret and its policy */
	tdc_error_clear(&e);
	rc = kbs_vault_policy(secret_id, &pjson, &e);
	if (rc < 0) {
		bool unknown = rc == TDC_E_NOT_FOUND;
		d->reason = unknown ? KBS_UNKNOWN_SECRET : KBS_INTERNAL;
		set_err(d->detail, sizeof(d->detail), unknown ? "secret" : "store", &e);
		goto out;
	}
	if (!pjson) {
		d->reason = KBS_POLICY_DENIED;
		snprintf(d->detail, sizeof(d->detail),
			 "secret %s has no policy: nothing is released without one", secret_id);
		goto out;
	}
	tdc_error_clear(&e);
	rc = tdc_policy_parse(pjson, strlen(pjson), &pol, &e);
	free(pjson);
	if (rc < 0) {
		d->reason = KBS_INTERNAL;
		set_err(d->detail, sizeof(d->detail), "stored policy", &e);
		goto out;
	}
	struct tdc_policy_input in = { .verdict = &p->v, .from_simulator = x->sim_trusted,
				       .event_log = has_log ? &log : NULL };
	tdc_error_clear(&e);
	rc = tdc_policy_eval(pol, &in, &res, &e);
	tdc_policy_free(pol);
	if (rc == TDC_E_POLICY) {
		bool tcb = res.reason_code && !strcmp(res.reason_code, "tcb_status");
		d->reason = tcb ? KBS_TCB_REFUSED : KBS_POLICY_DENIED;
		snprintf(d->detail, sizeof(d->detail), "policy of %s: %s", secret_id, res.reason);
		tdc_policy_result_free(&res);
		goto out;
	}
	tdc_policy_result_free(&res);
	if (rc < 0) {
		d->reason = KBS_INTERNAL;
		set_err(d->detail, sizeof(d->detail), "policy evaluation", &e);
		goto out;
	}

	/* the release itself is the keeper's (work() in server.c asks it) */
	d->reason = KBS_OK;
	char logs[64] = "";
	if (has_log)
		snprintf(logs, sizeof(logs), "; event log replayed (%zu events)", log.n);
	snprintf(d->detail, sizeof(d->detail), "released: %s%s; policy of %s passed", p->detail,
		 logs, secret_id);
out:
	tdc_evlog_free(&log);
}
