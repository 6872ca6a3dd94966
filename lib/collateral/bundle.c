/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Collateral from disk: a directory with one file per PCS/PCCS response,
 * or a dcap-qvl JSON file. File names (documented for users):
 *
 *   tcb_info.json                  required  PCS body {"tcbInfo":...,"signature":...}
 *   tcb_info_issuer_chain.pem      required  PEM or URL-encoded PEM
 *   qe_identity.json               required  PCS body {"enclaveIdentity":...,"signature":...}
 *   qe_identity_issuer_chain.pem   optional  defaults to tcb_info_issuer_chain.pem
 *   pck_crl.der | pck_crl.pem      required  DER, PEM or hex DER (content decides)
 *   pck_crl_issuer_chain.pem       optional  empty if absent
 *   root_ca_crl.der | root_ca_crl.pem  required  DER, PEM or hex DER
 *
 * Where two names are listed, exactly one of them may exist.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "tdcrypt/collateral.h"
#include "util/limits.h"
#include "util/util.h"

static void buf_free(struct tdc_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

void tdc_collateral_free(struct tdc_collateral *c)
{
	if (!c)
		return;
	buf_free(&c->tcb_info);
	buf_free(&c->tcb_info_chain);
	buf_free(&c->qe_identity);
	buf_free(&c->qe_identity_chain);
	buf_free(&c->pck_crl);
	buf_free(&c->pck_crl_chain);
	buf_free(&c->root_ca_crl);
	memset(c, 0, sizeof(*c));
}

/* Reads dir/name; *found = false (and no error) if it does not exist. */
static int read_opt(const char *dir, const char *name, size_t max, uint8_t **data, size_t *len,
		    bool *found, struct tdc_error *e)
{
	char path[4096];
	struct stat st;
	*data = NULL;
	*len = 0;
	*found = false;
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return TDC_FAILF(e, TDC_E_USAGE, "path too long", "%s", dir);
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return TDC_FAILF(e, TDC_E_IO, "cannot stat file", "%s: %s", path, strerror(errno));
	}
	*found = true;
	return tdc_file_read(path, max, data, len, e);
}

/* Reads the one existing file among names[0..n); required: error if none. */
static int read_one_of(const char *dir, const char *const *names, size_t n, size_t max,
		       bool required, uint8_t **data, size_t *len, bool *found, struct tdc_error *e)
{
	*data = NULL;
	*len = 0;
	*found = false;
	for (size_t i = 0; i < n; i++) {
		uint8_t *d;
		size_t l;
		bool f;
		int r = read_opt(dir, names[i], max, &d, &l, &f, e);
		if (r < 0) {
			free(*data);
			*data = NULL;
			return r;
		}
		if (!f)
			continue;
		if (*found) {
			free(d);
			free(*data);
			*data = NULL;
			return TDC_FAILF(e, TDC_E_FORMAT, "ambiguous collateral directory",
					 "%s: more than one of %s, %s", dir, names[0], names[i]);
		}
		*data = d;
		*len = l;
		*found = true;
	}
	if (required && !*found)
		return TDC_FAILF(e, TDC_E_IO, "missing collateral file", "%s/%s", dir, names[0]);
	return 0;
}

enum kind { BODY_TCB, BODY_QE, CHAIN, CRL };

/* Reads one piece and normalises it into out (sig only for bodies). */
static int piece(const char *dir, const char *const *names, size_t n, bool required, enum kind k,
		 struct tdc_buf *out, uint8_t sig[64], bool *found, struct tdc_error *e)
{
	uint8_t *d;
	size_t len;
	size_t max = k == CHAIN ? TDC_MAX_CHAIN_PEM
		     : k == CRL ? (size_t)TDC_MAX_CRL_SIZE
				: TDC_MAX_COLLATERAL_JSON;
	TDC_GUARD(read_one_of(dir, names, n, max, required, &d, &len, found, e));
	if (!*found)
		return 0;
	int r;
	switch (k) {
	case BODY_TCB:
		r = tdc_pcs_body_split(d, len, "tcbInfo", out, sig, e);
		break;
	case BODY_QE:
		r = tdc_pcs_body_split(d, len, "enclaveIdentity", out, sig, e);
		break;
	case CHAIN:
		r = tdc_chain_to_pem(d, len, out, e);
		break;
	default:
		r = tdc_crl_to_der(d, len, out, e);
		break;
	}
	free(d);
	return r;
}

/* A name list and its length, for read_one_of. */
#define NAMES(...) \
	(const char *const[]){ __VA_ARGS__ }, \
		sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)

static int fill_dir(const char *dir, struct tdc_collateral *c, struct tdc_error *e)
{
	bool f;
	TDC_GUARD(piece(dir, NAMES("tcb_info.json"), true, BODY_TCB, &c->tcb_info, c->tcb_info_sig,
			&f, e));
	TDC_GUARD(piece(dir, NAMES("tcb_info_issuer_chain.pem"), true, CHAIN, &c->tcb_info_chain,
			NULL, &f, e));
	TDC_GUARD(piece(dir, NAMES("qe_identity.json"), true, BODY_QE, &c->qe_identity,
			c->qe_identity_sig, &f, e));
	TDC_GUARD(piece(dir, NAMES("qe_identity_issuer_chain.pem"), false, CHAIN,
			&c->qe_identity_chain, NULL, &f, e));
	if (!f) {
		/* PCS signs TCB info and QE identity with the same TCB Signing cert */
		c->qe_identity_chain.data = malloc(c->tcb_info_chain.len + 1);
		if (!c->qe_identity_chain.data)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		memcpy(c->qe_identity_chain.data, c->tcb_info_chain.data,
		       c->tcb_info_chain.len + 1);
		c->qe_identity_chain.len = c->tcb_info_chain.len;
	}
	TDC_GUARD(piece(dir, NAMES("pck_crl.der", "pck_crl.pem"), true, CRL, &c->pck_crl, NULL, &f,
			e));
	TDC_GUARD(piece(dir, NAMES("pck_crl_issuer_chain.pem"), false, CHAIN, &c->pck_crl_chain,
			NULL, &f, e));
	if (!f) {
		/* documented as "may be empty": still a valid NUL-terminated text buffer */
		c->pck_crl_chain.data = calloc(1, 1);
		if (!c->pck_crl_chain.data)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	return piece(dir, NAMES("root_ca_crl.der", "root_ca_crl.pem"), true, CRL, &c->root_ca_crl,
		     NULL, &f, e);
}

int tdc_collateral_from_dir(const char *dir, struct tdc_collateral *c, struct tdc_error *e)
{
	if (!c || !dir)
		return TDC_FAIL(e, TDC_E_USAGE, "collateral: NULL argument");
	memset(c, 0, sizeof(*c));
	int r = fill_dir(dir, c, e);
	if (r < 0)
		tdc_collateral_free(c);
	return r;
}

int tdc_collateral_load(const char *path, struct tdc_collateral *c, struct tdc_error *e)
{
	struct stat st;
	if (!c || !path)
		return TDC_FAIL(e, TDC_E_USAGE, "collateral: NULL argument");
	memset(c, 0, sizeof(*c));
	if (stat(path, &st) < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot stat collateral", "%s: %s", path,
				 strerror(errno));
	if (S_ISDIR(st.st_mode))
		return tdc_collateral_from_dir(path, c, e);
	uint8_t *d;
	size_t len;
	TDC_GUARD(tdc_file_read(path, TDC_MAX_BUNDLE_FILE, &d, &len, e));
	int r = tdc_collateral_from_dcap_qvl_json(d, len, c, e);
	free(d);
	return r;
}
