/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy of a predicted boot: what `tdcrypt policy from-image` and `image encrypt
 * --emit-policy` register, so that the policy comes from the image, not from a first boot.
 * Built as JSON and parsed back, so it is exactly what the broker will load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "policy/policy-int.h"
#include "tdcrypt/measure.h"
#include "util/json.h"
#include "util/util.h"


static json_object *hex1(const uint8_t *d)
{
	char hex[2 * TDC_SHA384_LEN + 1];
	json_object *a = json_object_new_array();
	if (a && json_object_array_add(a, json_object_new_string(tdc_hex_encode(d, TDC_SHA384_LEN,
										  hex))) < 0) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

static json_object *event_json(const struct tdc_pred_event *ev)
{
	json_object *o = json_object_new_object();
	const char *t = tdc_event_type_name(ev->type);
	char what[TDC_PRED_WHAT];
	/* printable ASCII only (policy texts); the digest is what matters */
	size_t n = 0;
	for (const char *s = ev->what; *s && n + 1 < sizeof(what); s++)
		what[n++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : ' ';
	what[n] = '\0';
	if (!o || (t && tdc_json_add(o, "type", json_object_new_string(t)) < 0) ||
	    tdc_json_add(o, "role", json_object_new_string(tdc_event_role_name(ev->role))) < 0 ||
	    tdc_json_add(o, "what", json_object_new_string(what)) < 0 || tdc_json_add(o, "digest", hex1(ev->digest)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int tdc_policy_from_reference(const struct tdc_reference *r, const struct tdc_policy_reference *meta,
			      bool allow_unmeasured, char **json, struct tdc_error *e)
{
	const struct tdc_prediction *p = &r->pred;
	json_object *o = NULL, *events = NULL;
	struct tdc_policy *pol = NULL;
	int rc = TDC_E_NOMEM;

	*json = NULL;
	if (!allow_unmeasured && !(r->kernel_measured && r->initrd_measured && r->cmdline_measured))
		return TDC_FAILF(e, TDC_E_UNSUPPORTED,
				 "this boot leaves part of the guest unmeasured: a policy could not "
				 "tell a tampered boot",
				 "not measured:%s%s%s (see tdcrypt measure)",
				 r->kernel_measured ? "" : " kernel", r->initrd_measured ? "" : " initrd",
				 r->cmdline_measured ? "" : " command line");
	if (!(o = json_object_new_object()) || !(events = json_object_new_object()) ||
	    tdc_json_add(o, "version", json_object_new_int(TDC_POLICY_VERSION)) < 0 ||
	    tdc_json_add(o, "mrtd", hex1(r->mrtd)) < 0)
		goto out;
	if (!strcmp(meta->target, "sim") && tdc_json_add(o, "allow_simulator", json_object_new_boolean(1)) < 0)
		goto out;
	bool any = false;
	for (unsigned i = 0; i < TDC_RTMR_COUNT; i++) {
		if (!p->predicted[i])
			continue;
		json_object *list = json_object_new_array();
		size_t n = 0;
		for (size_t k = 0; list && k < p->n; k++) {
			if (p->ev[k].rtmr != i)
				continue;
			json_object *ev = event_json(&p->ev[k]);
			if (!ev || json_object_array_add(list, ev) < 0) {
				json_object_put(ev);
				json_object_put(list);
				list = NULL;
			}
			n++;
		}
		if (!list)
			goto out;
		const char *name = tdc_policy_mrs[TDC_PMR_RTMR0 + i].name;
		if (n == 0) { /* nothing extends it: its value is zero */
			json_object_put(list);
			if (tdc_json_add(o, name, hex1(p->rtmr[i])) < 0)
				goto out;
		} else {
			if (tdc_json_add(events, name, list) < 0)
				goto out;
			any = true;
		}
	}
	if (any) {
		if (tdc_json_add(o, "events", events) < 0) {
			events = NULL;
			goto out;
		}
		events = NULL;
	}
	if (meta->present && tdc_json_add(o, "reference", tdc_policy_reference_json(meta)) < 0)
		goto out;
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (!s)
		goto out;
	/* parse it back: the policy the broker will hold, in canonical form */
	if ((rc = tdc_policy_parse(s, strlen(s), &pol, e)) < 0)
		goto out;
	rc = tdc_policy_to_json(pol, json, e);
out:
	if (rc == TDC_E_NOMEM)
		TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	tdc_policy_free(pol);
	json_object_put(events);
	json_object_put(o);
	return rc;
}
