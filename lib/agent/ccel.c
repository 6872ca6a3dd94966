/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TD's CC event log, as the firmware left it: the CCEL ACPI table and its log area, which
 * Linux exports under /sys/firmware/acpi/tables. The area is the table's LAML bytes (256 KiB
 * on GCE), mostly erased padding; the agent sends only the events, and checks that they
 * parse before it does.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "agent-int.h"

void tdc_agent_evidence_free(struct tdc_agent_evidence *ev)
{
	if (!ev)
		return;
	free(ev->quote);
	free(ev->event_log);
	memset(ev, 0, sizeof(*ev));
}

int tdc_agent_read_ccel(const char *acpi_dir, struct tdc_agent_evidence *ev, struct tdc_error *e)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len;
	struct tdc_ccel_table t;
	struct tdc_evlog l;
	struct stat st;
	int rc;

	const char *dir = acpi_dir ? acpi_dir : TDC_ACPI_TABLES;
	snprintf(path, sizeof(path), "%s/CCEL", dir);
	if (stat(path, &st) < 0)
		return 0; /* no CCEL table: a quote without an event log */
	if ((rc = tdc_agent_read_small(path, 4096, &buf, &len, e)) < 0)
		return rc;
	if (len != TDC_CCEL_TABLE_SIZE || (rc = tdc_ccel_table_parse(buf, len, &t, e)) < 0) {
		free(buf);
		return rc < 0 ? rc : TDC_FAILF(e, TDC_E_FORMAT, "bad CCEL table", "%s", path);
	}
	memcpy(ev->ccel_table, buf, TDC_CCEL_TABLE_SIZE);
	free(buf);
	snprintf(path, sizeof(path), "%s/data/CCEL", dir);
	TDC_GUARD(tdc_agent_read_small(path, TDC_MAX_CCEL_AREA, &buf, &len, e));
	if ((rc = tdc_evlog_parse(buf, len, TDC_EVLOG_CC, &l, e)) < 0) {
		free(buf);
		return rc;
	}
	size_t used = l.len;
	tdc_evlog_free(&l);
	if (used > TDC_MAX_EVENT_LOG) {
		free(buf);
		return TDC_FAILF(e, TDC_E_LIMIT, "CC event log too large to send",
				 "%zu bytes, limit %u", used, TDC_MAX_EVENT_LOG);
	}
	ev->event_log = buf;
	ev->event_log_len = used;
	ev->has_table = true;
	return 0;
}
