/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quote provider: the simulator (tests and demos only), standing in for TDVF and the TDX
 * module. Its RTMRs are not invented: it takes the event log of the boot it runs in, from the
 * VM's vTPM (OVMF, GRUB and Linux measure into it exactly what they would measure into RTMRs
 * on a TD), turns it into a CC event log (tdc_evlog_tpm_to_cc), replays it, and signs a v4
 * quote with those RTMRs through the `tdcrypt sim init` PKI. MRTD and the other registers come
 * from DIR/td.json. A broker accepts these quotes only when told to trust the sim root.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "agent-int.h"
#include "util/json.h"
#include "tdcrypt/sim.h"
#include "util/util.h"

#define TD_JSON_MAX (8u * 1024u)
#define SECURITYFS "/sys/kernel/security"

int tdc_sim_td_parse(const uint8_t *json, size_t len, struct tdc_sim_td *td, struct tdc_error *e)
{
	static const struct {
		const char *key;
		size_t off, n;
	} fields[] = {
#define F(k, m) {k, offsetof(struct tdc_sim_td, m), sizeof(((struct tdc_sim_td *)0)->m)}
	    F("mrtd", mrtd),
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
			rc = TDC_FAILF(e, TDC_E_FORMAT, "unknown member in sim td.json", "%s%s", key,
				       !strncmp(key, "rtmr", 4)
					   ? " (RTMRs come from the boot's event log)" : "");
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

static int sub_path(char *out, size_t cap, const char *dir, const char *name, struct tdc_error *e)
{
	if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	return 0;
}

/* The initramfs has /sys but not securityfs, where the kernel shows the TPM event log. */
static void mount_securityfs(const char *log)
{
	struct stat st;
	if (strncmp(log, SECURITYFS "/", sizeof(SECURITYFS)) || stat(log, &st) == 0)
		return;
	(void)mount("securityfs", SECURITYFS, "securityfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		    NULL);
}

/* The boot's CC event log (from the vTPM log) and its RTMRs. */
static int sim_event_log(const char *tpm_log, struct tdc_agent_evidence *ev,
			 uint8_t rtmr[TDC_RTMR_COUNT][TDC_SHA384_LEN], struct tdc_error *e)
{
	uint8_t *buf = NULL;
	size_t blen;
	struct tdc_evlog tpm, cc;
	int rc;

	struct tdc_error re;
	mount_securityfs(tpm_log);
	tdc_error_clear(&re);
	if ((rc = tdc_agent_read_small(tpm_log, TDC_MAX_CCEL_AREA, &buf, &blen, &re)) < 0) {
		if (rc != TDC_E_IO) {
			if (e)
				*e = re;
			return rc;
		}
		return TDC_FAILF(e, TDC_E_UNSUPPORTED,
					 "no TPM event log: the simulator takes the RTMRs from the "
					 "vTPM's log (tdcrypt launch --no-tdx attaches one; GRUB must "
					 "boot Linux through its EFI stub, e.g. linuxefi)",
					 "%s", tpm_log);
	}
	if ((rc = tdc_evlog_parse(buf, blen, TDC_EVLOG_TPM, &tpm, e)) == 0) {
		rc = tdc_evlog_tpm_to_cc(&tpm, &ev->event_log, &ev->event_log_len, e);
		tdc_evlog_free(&tpm);
	}
	free(buf);
	if (rc < 0)
		return rc;
	if (ev->event_log_len > TDC_MAX_EVENT_LOG)
		return TDC_FAILF(e, TDC_E_LIMIT, "event log too large", "%zu bytes",
				 ev->event_log_len);
	TDC_GUARD(tdc_evlog_parse(ev->event_log, ev->event_log_len, TDC_EVLOG_CC, &cc, e));
	rc = tdc_evlog_replay(&cc, rtmr, e);
	tdc_evlog_free(&cc);
	tdc_ccel_table_build(ev->event_log_len, 0, ev->ccel_table);
	ev->has_table = true;
	return rc;
}

int tdc_sim_dir_quote(const char *dir, const char *tpm_log, const uint8_t report_data[64],
		      int64_t now, struct tdc_agent_evidence *ev, struct tdc_error *e)
{
	char path[4096];
	struct tdc_sim_pki *pki = NULL;
	struct tdc_sim_opts *o = NULL;
	struct tdc_sim_td td;
	uint8_t *buf = NULL;
	size_t blen;
	int rc;

	memset(ev, 0, sizeof(*ev));
	if ((rc = sub_path(path, sizeof(path), dir, "td.json", e)) < 0 ||
	    (rc = tdc_file_read(path, TD_JSON_MAX, &buf, &blen, e)) < 0)
		return rc;
	rc = tdc_sim_td_parse(buf, blen, &td, e);
	free(buf);
	if (rc < 0)
		return rc;
	if (!(o = calloc(1, sizeof(*o))))
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	tdc_sim_opts_default(o, now);
	if ((rc = sim_event_log(tpm_log ? tpm_log : TDC_TPM_EVENT_LOG, ev, o->td.rtmr, e)) < 0)
		goto out;
	memcpy(o->td.mrtd, td.mrtd, 48);
	memcpy(o->td.mrconfigid, td.mrconfigid, 48);
	memcpy(o->td.mrowner, td.mrowner, 48);
	memcpy(o->td.mrownerconfig, td.mrownerconfig, 48);
	memcpy(o->td.td_attributes, td.td_attributes, 8);
	memcpy(o->td.xfam, td.xfam, 8);
	memcpy(o->td.report_data, report_data, 64);
	if ((rc = sub_path(path, sizeof(path), dir, "pki", e)) < 0 ||
	    (rc = tdc_sim_pki_load(path, &pki, e)) < 0)
		goto out;
	rc = tdc_sim_quote(pki, o, &ev->quote, &ev->quote_len, e);
out:
	if (rc < 0)
		tdc_agent_evidence_free(ev);
	tdc_sim_pki_free(pki);
	free(o);
	return rc;
}
