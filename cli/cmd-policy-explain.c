/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt policy explain --secret ID QUOTE --collateral PATH [--policy FILE]
 *     [--socket PATH] [--at TIME] [--min-tcb-eval N]
 *     [--test-root-ca-for-testing-only DER_OR_PEM_FILE] [--json]
 * What the broker would decide for this quote and secret, rule by rule: the
 * secret's policy (from the broker's admin socket, or a file offline), full
 * DCAP verification of the quote at --at (default now), then every policy rule
 * with pass/fail, expected and actual values, and the verdict. The RA-TLS key
 * binding is not part of it: a bare quote has no TLS key to bind.
 * Exit: 0 released, 2 refused, 3 bad input, 4 internal error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/pem.h>

#include "cli.h"
#include "tdcrypt/measure.h"
#include "tdcrypt/policy.h"
#include "tdcrypt/verify.h"
#include "util/limits.h"
#include "util/util.h"


struct args {
	const char *secret, *quote, *policy, *sock;
	const char *event_log, *ccel_table;
	struct cli_verify_opts v;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tdcrypt policy explain --secret ID QUOTE --collateral PATH [--json]\n"
		"                              [--policy FILE | --socket PATH] [--at TIME]\n"
		"                              [--min-tcb-eval N] [--event-log FILE [--ccel-table F]]\n"
		"                              [--test-root-ca-for-testing-only DER_OR_PEM_FILE]\n"
		"  QUOTE         binary quote or hex text ('-': stdin)\n"
		"  --secret      the secret whose policy applies (its policy comes from the broker's\n"
		"                admin socket: --socket, $TDCRYPT_KBS_SOCKET or the default)\n"
		"  --policy      evaluate this policy file instead (offline; --secret optional)\n"
		"  --collateral  dcap-qvl collateral JSON file, or a directory bundle\n"
		"  --at          verification time: RFC 3339 or @UNIX; default: now\n"
		"  --event-log   the TD's CC event log (CCEL data), replayed to the quote's RTMRs\n"
		"                as the broker does; policies with \"events\" rule on it\n"
		"  --ccel-table  the CCEL ACPI table that came with it (optional)\n"
		"  --test-root-ca-for-testing-only  trust this root instead of Intel's (the\n"
		"                simulator's); the policy then sees a simulator quote\n"
		"exit: 0 released, 2 refused (verification or policy), 3 bad input\n");
}

static int parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const bool has_val = i + 1 < argc;
		int used = cli_verify_opt(argc, argv, &i, &a->v, "policy explain");
		if (used < 0)
			return -1;
		if (used)
			continue;
		if (!strcmp(s, "--secret") && has_val) {
			a->secret = argv[++i];
		} else if (!strcmp(s, "--policy") && has_val) {
			a->policy = argv[++i];
		} else if (!strcmp(s, "--socket") && has_val) {
			a->sock = argv[++i];
		} else if (!strcmp(s, "--event-log") && has_val) {
			a->event_log = argv[++i];
		} else if (!strcmp(s, "--ccel-table") && has_val) {
			a->ccel_table = argv[++i];
		} else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			usage(stdout);
			exit(TDC_EXIT_OK);
		} else if (s[0] == '-' && s[1] != '\0') {
			fprintf(stderr, "tdcrypt: policy explain: unknown or incomplete option '%s'\n",
				s);
			return -1;
		} else if (!a->quote) {
			a->quote = s;
		} else {
			fprintf(stderr, "tdcrypt: policy explain: unexpected argument '%s'\n", s);
			return -1;
		}
	}
	if (!a->quote || !a->v.collateral || (!a->secret && !a->policy)) {
		usage(stderr);
		return -1;
	}
	if (a->policy && a->sock) {
		fprintf(stderr, "tdcrypt: policy explain: --policy and --socket exclude each other\n");
		return -1;
	}
	return 0;
}

/*
 * The policy text: the file, or the broker's canonical copy (policy.show).
 * *text NULL with exit 0: the secret has no policy.
 */
static int get_policy(const struct args *a, char **text, const char **source)
{
	struct tdc_error e;
	*text = NULL;
	if (a->policy) {
		uint8_t *buf;
		size_t n;
		tdc_error_clear(&e);
		if (tdc_file_read(a->policy, TDC_MAX_POLICY_JSON, &buf, &n, &e) < 0) {
			cli_print_error(a->policy, &e);
			return cli_exit_for(e.code);
		}
		*text = (char *)buf; /* tdc_file_read NUL-terminates */
		*source = a->policy;
		return TDC_EXIT_OK;
	}
	json_object *jid = json_object_new_string(a->secret), *reply = NULL, *pol;
	if (!jid)
		return TDC_EXIT_INTERNAL;
	char req[512];
	int n = snprintf(req, sizeof(req), "{\"op\":\"policy.show\",\"id\":%s}\n",
			 json_object_to_json_string_ext(jid, JSON_C_TO_STRING_PLAIN));
	json_object_put(jid);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		fprintf(stderr, "tdcrypt: policy explain: secret ID too long\n");
		return TDC_EXIT_BAD_INPUT;
	}
	const char *sock = cli_admin_socket(a->sock);
	int rc = cli_admin_call(sock, req, (size_t)n, &reply);
	if (rc == TDC_EXIT_OK && json_object_object_get_ex(reply, "policy", &pol) && pol) {
		*text = strdup(json_object_to_json_string_ext(pol, JSON_C_TO_STRING_PLAIN));
		if (!*text)
			rc = TDC_EXIT_INTERNAL;
	}
	*source = sock;
	json_object_put(reply);
	return rc;
}

static void print_verification(const struct tdc_verdict *v)
{
	char date[32], fm[13], until[32];
	printf("quote verified: %s (TCB date %.10s, FMSPC %s, eval %u, collateral valid until %s)\n",
	       tdc_tcb_status_name(v->status), tdc_time_format(v->tcb_date, date, sizeof(date)),
	       tdc_hex_encode(v->fmspc, 6, fm), v->tcb_eval_num,
	       tdc_time_format(v->collateral_not_after, until, sizeof(until)));
}

/* The reason code the agent would receive (PROTOCOL.md §6.2) for a verification failure. */
static const char *verify_code(int rc)
{
	switch (rc) {
	case TDC_E_EXPIRED:
	case TDC_E_STALE:
		return "collateral_unavailable";
	case TDC_E_TCB_NOT_SUPPORTED:
	case TDC_E_REVOKED:
		return "tcb_refused";
	default:
		return "quote_invalid";
	}
}

/* Adds key = v to o (v NULL: JSON null); false (v released) on failure. */
static bool jadd(json_object *o, const char *key, json_object *v)
{
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return false;
	}
	return true;
}

/* A string, or NULL (JSON null) for s == NULL. */
static json_object *jstring(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/*
 * {"secret_id","policy_source","verification":<verdict>,"allowed","reason_code",
 *  "agent_reason","reason","rules":[...]}; res NULL: verification failed, no rules.
 */
static int print_json(const struct args *a, const char *source, const struct tdc_verdict *v,
		      const struct tdc_error *verr, const struct tdc_policy_result *res,
		      const char *agent_code)
{
	json_object *o = NULL, *ver = NULL, *rj = NULL;
	char *txt = NULL;
	int rc = -1;
	if (tdc_verdict_to_json(v, verr, &ver) < 0)
		return -1;
	if (res && (tdc_policy_result_to_json(res, &txt, NULL) < 0 ||
		    !(rj = json_tokener_parse(txt))))
		goto out;
	o = rj ? rj : json_object_new_object();
	rj = NULL;
	if (!o || !jadd(o, "secret_id", jstring(a->secret)) ||
	    !jadd(o, "policy_source", jstring(source)) || !jadd(o, "agent_reason", jstring(agent_code)))
		goto out;
	if (!res && (!jadd(o, "allowed", json_object_new_boolean(0)) ||
		     !jadd(o, "reason_code", jstring(agent_code)) ||
		     !jadd(o, "rules", json_object_new_array())))
		goto out;
	if (!jadd(o, "verification", ver)) {
		ver = NULL;
		goto out;
	}
	ver = NULL;
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	rc = 0;
out:
	json_object_put(ver);
	json_object_put(o);
	free(txt);
	return rc;
}

int cmd_policy_explain(int argc, char **argv)
{
	struct args a;
	struct tdc_error e;
	struct cli_verify_inputs vin;
	struct tdc_verdict verdict = { 0 };
	struct tdc_policy *pol = NULL;
	struct tdc_policy_result res;
	char *ptext = NULL;
	const char *source = NULL;
	struct tdc_evlog evlog = { 0 };
	uint8_t *log_buf = NULL;
	bool has_log = false;
	int exit_code, rc;

	memset(&res, 0, sizeof(res));
	tdc_error_clear(&e);
	if (parse_args(argc, argv, &a) < 0)
		return TDC_EXIT_BAD_INPUT;
	/* every input is read and checked before the verdict */
	exit_code = cli_verify_load(&a.v, a.quote, "the policy sees a simulator quote", &vin);
	if (exit_code != TDC_EXIT_OK)
		goto out;
	exit_code = get_policy(&a, &ptext, &source);
	if (exit_code != TDC_EXIT_OK)
		goto out;
	if (!ptext) {
		/* the broker refuses every request for a secret without a policy */
		fprintf(stderr, "tdcrypt: %s has no policy: the broker releases nothing for it "
				"(policy_denied)\n", a.secret);
		exit_code = TDC_EXIT_REJECTED;
		goto out;
	}
	tdc_error_clear(&e);
	if (tdc_policy_parse(ptext, strlen(ptext), &pol, &e) < 0) {
		cli_print_error(a.policy ? a.policy : "the broker's policy", &e);
		exit_code = a.policy ? cli_exit_for(e.code) : TDC_EXIT_INTERNAL;
		goto out;
	}

	tdc_error_clear(&e);
	rc = tdc_verify_quote(vin.ver, vin.quote, vin.quote_len, &vin.coll, vin.now, &verdict, &e);
	if (rc < 0) {
		/* the broker stops here: no rule is evaluated on unverified claims */
		exit_code = cli_exit_for(e.code);
		if (a.v.json) {
			if (print_json(&a, source, &verdict, &e, NULL, verify_code(e.code)) < 0)
				exit_code = TDC_EXIT_INTERNAL;
		} else {
			char buf[512];
			printf("quote verification: FAIL %s: %s\n", tdc_err_name(e.code),
			       tdc_error_format(&e, buf, sizeof(buf)));
			printf("policy not evaluated: the broker refuses before the policy\n");
			printf("decision: deny (%s)\n", verify_code(e.code));
		}
		goto out;
	}

	/* the event log, checked as the broker checks it */
	if (a.event_log) {
		uint8_t *lb = NULL, *tb = NULL;
		size_t ln = 0, tn = 0;
		tdc_error_clear(&e);
		rc = tdc_file_read(a.event_log, TDC_MAX_CCEL_AREA, &lb, &ln, &e);
		if (rc == 0 && a.ccel_table && (rc = tdc_file_read(a.ccel_table, 4096, &tb, &tn, &e)) == 0 &&
		    tn != TDC_CCEL_TABLE_SIZE)
			rc = TDC_FAIL(&e, TDC_E_FORMAT, "not a CCEL table (56 bytes)");
		if (rc == 0)
			rc = tdc_evlog_verify(lb, ln, tb,
					      (const uint8_t(*)[TDC_SHA384_LEN])verdict.td.rtmr, &evlog,
					      &e);
		free(tb);
		if (rc < 0) {
			free(lb);
			char buf[512];
			printf("event log: FAIL %s\n", tdc_error_format(&e, buf, sizeof(buf)));
			printf("decision: deny (evidence_invalid)\n");
			exit_code = TDC_EXIT_REJECTED;
			goto out;
		}
		log_buf = lb;
		has_log = true;
		if (!a.v.json)
			printf("event log: %zu events, replays to the quote's RTMRs\n", evlog.n);
	}
	struct tdc_policy_input in = { .verdict = &verdict, .from_simulator = vin.root != NULL,
				       .event_log = has_log ? &evlog : NULL };
	tdc_error_clear(&e);
	rc = tdc_policy_eval(pol, &in, &res, &e);
	if (rc < 0 && rc != TDC_E_POLICY) {
		cli_print_error("policy evaluation", &e);
		exit_code = TDC_EXIT_INTERNAL;
		goto out;
	}
	/* a refused TCB status reaches the agent as tcb_refused, any other rule as policy_denied */
	const char *agent_code = rc == 0 ? NULL
				 : res.reason_code && !strcmp(res.reason_code, "tcb_status")
					 ? "tcb_refused"
					 : "policy_denied";
	if (a.v.json) {
		if (print_json(&a, source, &verdict, NULL, &res, agent_code) < 0) {
			fprintf(stderr, "tdcrypt: policy explain: out of memory\n");
			exit_code = TDC_EXIT_INTERNAL;
			goto out;
		}
	} else {
		if (a.secret)
			printf("secret %s, policy from %s\n", a.secret, source);
		else
			printf("policy from %s\n", source);
		print_verification(&verdict);
		tdc_policy_result_print(&res, stdout);
		if (agent_code)
			printf("the agent would receive: %s\n", agent_code);
	}
	exit_code = rc == 0 ? TDC_EXIT_OK : TDC_EXIT_REJECTED;
out:
	tdc_evlog_free(&evlog);
	free(log_buf);
	tdc_policy_result_free(&res);
	tdc_policy_free(pol);
	tdc_verdict_free(&verdict);
	cli_verify_inputs_free(&vin);
	free(ptext);
	return exit_code;
}
