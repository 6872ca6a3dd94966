/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quote provider: the simulator (tests and demos only). A v4 quote signed
 * through the `tdcrypt sim init` PKI, with the measurements of DIR/td.json and
 * RTMR2 extended once from the kernel command line, so that booting with
 * another command line changes the measurement as it would on real TDX
 * (where the boot loader or the EFI stub measures it into RTMR2).
 * A broker accepts these quotes only when told to trust the sim root.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "agent-int.h"
#include "util/json.h"
#include "tdcrypt/sim.h"
#include "util/util.h"

#define TD_JSON_MAX (8u * 1024u)

int tdc_sim_td_parse(const uint8_t *json, size_t len, struct tdc_sim_td *td, struct tdc_error *e)
{
	static const struct {
		const char *key;
		size_t off, n;
	} fields[] = {
#define F(k, m) {k, offsetof(struct tdc_sim_td, m), sizeof(((struct tdc_sim_td *)0)->m)}
	    F("mrtd", mrtd),
	    F("rtmr0", rtmr0),
	    F("rtmr1", rtmr1),
	    F("rtmr3", rtmr3),
	    F("mrconfigid", mrconfigid),
	    F("mrowner", mrowner),
	    F("mrownerconfig", mrownerconfig),
	    F("td_attributes", td_attributes),
	    F("xfam", xfam),
#undef F
	};
	json_object *root;
	int rc = 0;

	memset(td, 0, sizeof(*td));
	TDC_GUARD(tdc_json_parse_object(json, len, TD_JSON_MAX, "sim td.json", &root, e));
	json_object_object_foreach (root, key, val) {
		(void)val;
		bool known = false;
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			known |= !strcmp(key, fields[i].key);
		if (!known) {
			rc = TDC_FAILF(
			    e, TDC_E_FORMAT, "unknown member in sim td.json", "%s%s", key,
			    !strcmp(key, "rtmr2") ? " (RTMR2 comes from the command line)" : "");
			goto out;
		}
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if ((rc = tdc_json_hex(root, NULL, fields[i].key, (uint8_t *)td + fields[i].off,
				       fields[i].n, e)) < 0)
			goto out;
out:
	json_object_put(root);
	return rc;
}

void tdc_sim_rtmr2(const uint8_t *cmdline, size_t len, uint8_t rtmr2[48])
{
	uint8_t buf[96];
	unsigned int n;
	while (len > 0 &&
	       (cmdline[len - 1] == '\n' || cmdline[len - 1] == ' ' || cmdline[len - 1] == '\0'))
		len--;
	memset(buf, 0, 48);
	EVP_Digest(cmdline, len, buf + 48, &n, EVP_sha384(), NULL);
	EVP_Digest(buf, sizeof(buf), rtmr2, &n, EVP_sha384(), NULL);
}

static int sub_path(char *out, size_t cap, const char *dir, const char *name, struct tdc_error *e)
{
	if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	return 0;
}

int tdc_sim_dir_quote(const char *dir, const char *cmdline_path, const uint8_t report_data[64],
		      int64_t now, uint8_t **quote, size_t *len, struct tdc_error *e)
{
	char path[4096];
	struct tdc_sim_pki *pki = NULL;
	struct tdc_sim_opts *o = NULL;
	struct tdc_sim_td td;
	uint8_t *buf = NULL;
	size_t blen;
	int rc;

	*quote = NULL;
	*len = 0;
	if ((rc = sub_path(path, sizeof(path), dir, "td.json", e)) < 0 ||
	    (rc = tdc_file_read(path, TD_JSON_MAX, &buf, &blen, e)) < 0)
		return rc;
	rc = tdc_sim_td_parse(buf, blen, &td, e);
	free(buf);
	buf = NULL;
	if (rc < 0)
		return rc;
	if (!(o = calloc(1, sizeof(*o))))
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	tdc_sim_opts_default(o, now);
	if ((rc = tdc_agent_read_small(cmdline_path ? cmdline_path : TDC_AGENT_DEFAULT_CMDLINE,
				       TDC_MAX_CMDLINE, &buf, &blen, e)) < 0)
		goto out;
	tdc_sim_rtmr2(buf, blen, o->td.rtmr[2]);
	memcpy(o->td.mrtd, td.mrtd, 48);
	memcpy(o->td.rtmr[0], td.rtmr0, 48);
	memcpy(o->td.rtmr[1], td.rtmr1, 48);
	memcpy(o->td.rtmr[3], td.rtmr3, 48);
	memcpy(o->td.mrconfigid, td.mrconfigid, 48);
	memcpy(o->td.mrowner, td.mrowner, 48);
	memcpy(o->td.mrownerconfig, td.mrownerconfig, 48);
	memcpy(o->td.td_attributes, td.td_attributes, 8);
	memcpy(o->td.xfam, td.xfam, 8);
	memcpy(o->td.report_data, report_data, 64);
	if ((rc = sub_path(path, sizeof(path), dir, "pki", e)) < 0 ||
	    (rc = tdc_sim_pki_load(path, &pki, e)) < 0)
		goto out;
	rc = tdc_sim_quote(pki, o, quote, len, e);
out:
	tdc_sim_pki_free(pki);
	free(o);
	free(buf);
	return rc;
}
