/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `tdcrypt sim init DIR`: a simulator directory that both ends use. The guest
 * (sim provider) needs pki/ and td.json; the broker needs collateral/ and
 * sim-root.pem. Layout: agent/README.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent-int.h"
#include "tdcrypt/sim.h"
#include "util/util.h"
#include "util/wr.h"

#define DAY (24 * 3600)

static int write_file(const char *dir, const char *name, const void *data, size_t n,
		      struct tdc_error *e)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create file", "%s: %s", path,
				 strerror(errno));
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, (const char *)data + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return TDC_FAILF(e, TDC_E_IO, "write failed", "%s", path);
		}
		done += (size_t)w;
	}
	if (close(fd) < 0)
		return TDC_FAILF(e, TDC_E_IO, "write failed", "%s", path);
	return 0;
}

static int root_pem(const struct tdc_sim_pki *pki, const char *dir, struct tdc_error *e)
{
	const uint8_t *der, *p;
	size_t len;
	char *pem = NULL;
	int rc;

	tdc_sim_root_der(pki, &der, &len);
	p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	BIO *b = BIO_new(BIO_s_mem());
	long n;
	if (!x || !b || PEM_write_bio_X509(b, x) != 1 || (n = BIO_get_mem_data(b, &pem)) <= 0)
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "PEM encoding failed");
	else
		rc = write_file(dir, "sim-root.pem", pem, (size_t)n, e);
	BIO_free(b);
	X509_free(x);
	return rc;
}

static void wr_hex_member(struct tdc_wr *w, const char *key, const uint8_t *p, size_t n, bool last)
{
	char hex[2 * 48 + 1];
	tdc_wr_fmt(w, "  \"%s\": \"%s\"%s\n", key, tdc_hex_encode(p, n, hex), last ? "" : ",");
}

static int td_json(const struct tdc_td_report *td, const char *dir, struct tdc_error *e)
{
	struct tdc_wr w;
	uint8_t *out;
	size_t len;
	tdc_wr_init_alloc(&w, 4096);
	tdc_wr_str(&w, "{\n");
	wr_hex_member(&w, "mrtd", td->mrtd, 48, false);
	wr_hex_member(&w, "mrconfigid", td->mrconfigid, 48, false);
	wr_hex_member(&w, "mrowner", td->mrowner, 48, false);
	wr_hex_member(&w, "mrownerconfig", td->mrownerconfig, 48, false);
	wr_hex_member(&w, "td_attributes", td->td_attributes, 8, false);
	wr_hex_member(&w, "xfam", td->xfam, 8, true);
	tdc_wr_str(&w, "}\n");
	TDC_GUARD(tdc_wr_finish(&w, &out, &len, e));
	int rc = write_file(dir, "td.json", out, len, e);
	free(out);
	return rc;
}

int tdc_sim_dir_init(const char *dir, int64_t now, uint32_t days, const uint8_t *mrtd,
		     struct tdc_error *e)
{
	char sub[4096];
	struct tdc_sim_opts *o = calloc(1, sizeof(*o));
	struct tdc_sim_pki *pki = NULL;
	struct tdc_collateral c;
	int rc;

	memset(&c, 0, sizeof(c));
	if (!o)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if (days == 0 || days > 3650) {
		rc = TDC_FAIL(e, TDC_E_USAGE, "collateral validity must be 1..3650 days");
		goto out;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = TDC_FAILF(e, TDC_E_IO, "cannot create directory", "%s: %s", dir,
			       strerror(errno));
		goto out;
	}
	tdc_sim_opts_default(o, now);
	memset(o->td.mrtd, 0, sizeof(o->td.mrtd));
	if (mrtd)
		memcpy(o->td.mrtd, mrtd, sizeof(o->td.mrtd));
	int64_t until = now + (int64_t)days * DAY;
	o->tcb_info.dates.to = until;
	o->qe_identity.dates.to = until;
	o->pck_crl_window.to = until;
	if (o->root_crl_window.to < until)
		o->root_crl_window.to = until;

	if ((rc = tdc_sim_pki_new(o, &pki, e)) < 0 ||
	    (rc = snprintf(sub, sizeof(sub), "%s/pki", dir)) < 0 ||
	    (rc = tdc_sim_pki_save(pki, sub, e)) < 0 ||
	    (rc = tdc_sim_collateral(pki, o, &c, e)) < 0)
		goto out;
	if ((rc = snprintf(sub, sizeof(sub), "%s/collateral", dir)) < 0 ||
	    (rc = tdc_sim_collateral_save(&c, sub, e)) < 0 || (rc = root_pem(pki, dir, e)) < 0 ||
	    (rc = td_json(&o->td, dir, e)) < 0)
		goto out;
	rc = 0;
out:
	tdc_collateral_free(&c);
	tdc_sim_pki_free(pki);
	free(o);
	return rc;
}
