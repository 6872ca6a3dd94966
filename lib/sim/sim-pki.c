/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated PKI: keys, certificates (with the PCK SGX extension) and
 * CRLs, shaped like Intel's so that X509_V_FLAG_X509_STRICT accepts them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "sim-int.h"
#include "util/util.h"

#define SGX_EXT_OID "1.2.840.113741.1.13.1"
#define PKI_FILE_MAX (64u * 1024u)

int tdc_sim_new_key(EVP_PKEY **out, struct tdc_error *e)
{
	*out = EVP_EC_gen("P-256");
	if (!*out)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "P-256 key generation failed");
	return 0;
}

int tdc_sim_sign_raw(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t sig[64],
		     struct tdc_error *e)
{
	uint8_t der[128];
	size_t dlen = sizeof(der);
	int rc = TDC_E_CRYPTO;
	ECDSA_SIG *s = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &dlen, msg, len) != 1) {
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "ECDSA signing failed");
		goto out;
	}
	const unsigned char *p = der;
	s = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	const BIGNUM *r = NULL, *ss = NULL;
	if (s)
		ECDSA_SIG_get0(s, &r, &ss);
	if (!s || BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(ss, sig + 32, 32) != 32) {
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "ECDSA signature conversion failed");
		goto out;
	}
	rc = 0;
out:
	ECDSA_SIG_free(s);
	EVP_MD_CTX_free(md);
	return rc;
}

int tdc_sim_pub_raw(EVP_PKEY *key, uint8_t xy[64], struct tdc_error *e)
{
	uint8_t pt[65];
	size_t n = 0;
	if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt),
					    &n) != 1 ||
	    n != sizeof(pt) || pt[0] != 0x04)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "not an uncompressed P-256 public key");
	memcpy(xy, pt + 1, 64);
	return 0;
}

int tdc_sim_wr_pem(struct tdc_wr *w, X509 *cert, struct tdc_error *e)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	if (!b || PEM_write_bio_X509(b, cert) != 1) {
		BIO_free(b);
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "PEM encoding failed");
	}
	long n = BIO_get_mem_data(b, &p);
	int rc = n > 0 ? tdc_wr_bytes(w, p, (size_t)n) : TDC_E_CRYPTO;
	BIO_free(b);
	if (rc < 0)
		return TDC_FAIL(e, rc, "PEM encoding failed");
	return 0;
}

/* --- ASN.1 of the SGX extension, built bottom-up from ASN1_TYPEs. Each helper
 * returns NULL on failure; t_seq consumes its items in every case. --- */

static ASN1_TYPE *t_oid(const char *dotted)
{
	ASN1_OBJECT *o = OBJ_txt2obj(dotted, 1);
	ASN1_TYPE *t = ASN1_TYPE_new();
	if (!o || !t) {
		ASN1_OBJECT_free(o);
		ASN1_TYPE_free(t);
		return NULL;
	}
	ASN1_TYPE_set(t, V_ASN1_OBJECT, o);
	return t;
}

static ASN1_TYPE *t_octets(const uint8_t *p, size_t n)
{
	ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
	ASN1_TYPE *t = ASN1_TYPE_new();
	if (!s || !t || ASN1_OCTET_STRING_set(s, p, (int)n) != 1) {
		ASN1_OCTET_STRING_free(s);
		ASN1_TYPE_free(t);
		return NULL;
	}
	ASN1_TYPE_set(t, V_ASN1_OCTET_STRING, s);
	return t;
}

static ASN1_TYPE *t_int(long v, int type)
{
	ASN1_TYPE *t = ASN1_TYPE_new();
	ASN1_INTEGER *i = type == V_ASN1_ENUMERATED ? ASN1_ENUMERATED_new() : ASN1_INTEGER_new();
	int ok = i && t &&
		 (type == V_ASN1_ENUMERATED ? ASN1_ENUMERATED_set(i, v) : ASN1_INTEGER_set(i, v));
	if (!ok) {
		ASN1_STRING_free(i);
		ASN1_TYPE_free(t);
		return NULL;
	}
	ASN1_TYPE_set(t, type, i);
	return t;
}

static ASN1_TYPE *t_bool(bool v)
{
	ASN1_TYPE *t = ASN1_TYPE_new();
	if (t)
		ASN1_TYPE_set(t, V_ASN1_BOOLEAN, v ? (void *)1 : NULL);
	return t;
}

static ASN1_TYPE *t_seq(ASN1_TYPE **items, size_t n)
{
	ASN1_SEQUENCE_ANY *sk = sk_ASN1_TYPE_new_null();
	ASN1_TYPE *t = NULL;
	ASN1_STRING *s = NULL;
	unsigned char *der = NULL;
	bool ok = sk != NULL;

	for (size_t i = 0; i < n; i++) {
		if (!items[i] || !ok || sk_ASN1_TYPE_push(sk, items[i]) <= 0) {
			ASN1_TYPE_free(items[i]);
			ok = false;
		}
	}
	int len = ok ? i2d_ASN1_SEQUENCE_ANY(sk, &der) : -1;
	if (len > 0 && (t = ASN1_TYPE_new()) && (s = ASN1_STRING_new()) &&
	    ASN1_STRING_set(s, der, len) == 1) {
		ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
		s = NULL;
	} else {
		ASN1_TYPE_free(t);
		t = NULL;
	}
	ASN1_STRING_free(s);
	OPENSSL_free(der);
	sk_ASN1_TYPE_pop_free(sk, ASN1_TYPE_free);
	return t;
}

static ASN1_TYPE *t_pair(const char *oid, ASN1_TYPE *v)
{
	ASN1_TYPE *it[2] = { t_oid(oid), v };
	return t_seq(it, 2);
}

/* DER of the SGX extension value: 7 entries, like a Platform-CA PCK. */
static int sgx_ext_der(const struct tdc_sim_pck *p, ASN1_OCTET_STRING **out, struct tdc_error *e)
{
	ASN1_TYPE *tcb[18];
	char oid[64];

	for (int i = 0; i < 16; i++) {
		snprintf(oid, sizeof(oid), SGX_EXT_OID ".2.%d", i + 1);
		tcb[i] = t_pair(oid, t_int(p->sgx_svn[i], V_ASN1_INTEGER));
	}
	tcb[16] = t_pair(SGX_EXT_OID ".2.17", t_int(p->pcesvn, V_ASN1_INTEGER));
	tcb[17] = t_pair(SGX_EXT_OID ".2.18", t_octets(p->cpusvn, 16));

	ASN1_TYPE *conf[3] = {
		t_pair(SGX_EXT_OID ".7.1", t_bool(p->dynamic_platform)),
		t_pair(SGX_EXT_OID ".7.2", t_bool(p->cached_keys)),
		t_pair(SGX_EXT_OID ".7.3", t_bool(p->smt_enabled)),
	};
	ASN1_TYPE *top[7] = {
		t_pair(SGX_EXT_OID ".1", t_octets(p->ppid, 16)),
		t_pair(SGX_EXT_OID ".2", t_seq(tcb, 18)),
		t_pair(SGX_EXT_OID ".3", t_octets(p->pce_id, 2)),
		t_pair(SGX_EXT_OID ".4", t_octets(p->fmspc, 6)),
		t_pair(SGX_EXT_OID ".5", t_int(p->sgx_type, V_ASN1_ENUMERATED)),
		t_pair(SGX_EXT_OID ".6", t_octets(p->platform_instance_id, 16)),
		t_pair(SGX_EXT_OID ".7", t_seq(conf, 3)),
	};
	ASN1_TYPE *ext = t_seq(top, 7);
	*out = NULL;
	if (ext) {
		/* value.sequence holds the complete DER of the SEQUENCE */
		*out = ASN1_OCTET_STRING_new();
		if (*out && ASN1_OCTET_STRING_set(*out, ext->value.sequence->data,
						  ext->value.sequence->length) != 1) {
			ASN1_OCTET_STRING_free(*out);
			*out = NULL;
		}
	}
	ASN1_TYPE_free(ext);
	if (!*out)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "building the SGX extension failed");
	return 0;
}

/* --- certificates --- */

enum cert_kind { K_ROOT, K_CA, K_END };

static ASN1_INTEGER *random_serial(void)
{
	uint8_t b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return NULL;
	b[0] = (uint8_t)((b[0] & 0x7f) | 0x40); /* positive, 16 significant bytes */
	BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
	ASN1_INTEGER *s = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	BN_free(bn);
	return s;
}

static X509_NAME *make_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();
	if (!n ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
					0) ||
	    !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
					(const unsigned char *)"tdcrypt simulation", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(n, "C", MBSTRING_UTF8, (const unsigned char *)"US", -1, -1,
					0)) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

static bool add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	bool ok = ex && X509_add_ext(x, ex, -1) == 1;
	X509_EXTENSION_free(ex);
	return ok;
}

static bool set_time(ASN1_TIME **slot, int64_t t)
{
	ASN1_TIME *a = ASN1_TIME_set(NULL, (time_t)t);
	if (!a)
		return false;
	ASN1_TIME_free(*slot);
	*slot = a;
	return true;
}

/*
 * Makes a certificate for key `subject_key` named cn. issuer == NULL means
 * self-signed. aki_from supplies the authority key id (normally issuer);
 * sign_key signs (normally the issuer's key).
 */
static int make_cert(const char *cn, EVP_PKEY *subject_key, X509 *issuer, X509 *aki_from,
		     EVP_PKEY *sign_key, const struct tdc_sim_window *win, enum cert_kind kind,
		     const struct tdc_sim_pck *pck, X509 **out, struct tdc_error *e)
{
	X509 *x = X509_new();
	X509_NAME *name = make_name(cn);
	ASN1_INTEGER *serial = random_serial();
	ASN1_TIME *nb = NULL, *na = NULL;
	ASN1_OCTET_STRING *sgx = NULL;
	ASN1_OBJECT *sgx_oid = NULL;
	X509_EXTENSION *sgx_ex = NULL;
	X509V3_CTX ctx;
	int rc = TDC_E_CRYPTO;

	*out = NULL;
	if (!x || !name || !serial || !set_time(&nb, win->from) || !set_time(&na, win->to) ||
	    X509_set_version(x, X509_VERSION_3) != 1 || X509_set_serialNumber(x, serial) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_set1_notBefore(x, nb) != 1 || X509_set1_notAfter(x, na) != 1 ||
	    X509_set_pubkey(x, subject_key) != 1)
		goto ossl;

	X509V3_set_ctx(&ctx, aki_from ? aki_from : x, x, NULL, NULL, 0);
	const char *bc = kind == K_ROOT ? "critical,CA:TRUE,pathlen:1"
			 : kind == K_CA ? "critical,CA:TRUE,pathlen:0"
					: "critical,CA:FALSE";
	const char *ku = kind == K_END ? "critical,digitalSignature,nonRepudiation"
				       : "critical,keyCertSign,cRLSign";
	if (!add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") ||
	    !add_ext(x, &ctx, NID_basic_constraints, bc) || !add_ext(x, &ctx, NID_key_usage, ku))
		goto ossl;
	if (pck) {
		if ((rc = sgx_ext_der(pck, &sgx, e)) < 0)
			goto out;
		sgx_oid = OBJ_txt2obj(SGX_EXT_OID, 1);
		if (!sgx_oid || !(sgx_ex = X509_EXTENSION_create_by_OBJ(NULL, sgx_oid, 0, sgx)) ||
		    X509_add_ext(x, sgx_ex, -1) != 1)
			goto ossl;
	}
	if (X509_sign(x, sign_key, EVP_sha256()) <= 0)
		goto ossl;
	*out = x;
	x = NULL;
	rc = 0;
	goto out;
ossl:
	rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "building a certificate failed");
out:
	X509_EXTENSION_free(sgx_ex);
	ASN1_OBJECT_free(sgx_oid);
	ASN1_OCTET_STRING_free(sgx);
	ASN1_TIME_free(nb);
	ASN1_TIME_free(na);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(name);
	X509_free(x);
	return rc;
}

int tdc_sim_crl(X509 *issuer, EVP_PKEY *key, const struct tdc_sim_window *win,
		const ASN1_INTEGER *const *serials, size_t n, uint8_t **der, size_t *len,
		struct tdc_error *e)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *lu = NULL, *nu = NULL;
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	X509_EXTENSION *aki = NULL;
	unsigned char *p = NULL;
	X509V3_CTX ctx;
	int rc;

	*der = NULL;
	*len = 0;
	if (!crl || !num || !set_time(&lu, win->from) || !set_time(&nu, win->to) ||
	    X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) != 1 ||
	    X509_CRL_set1_lastUpdate(crl, lu) != 1 || X509_CRL_set1_nextUpdate(crl, nu) != 1)
		goto ossl;
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		if (!r || X509_REVOKED_set_serialNumber(r, (ASN1_INTEGER *)serials[i]) != 1 ||
		    X509_REVOKED_set_revocationDate(r, lu) != 1 ||
		    X509_CRL_add0_revoked(crl, r) != 1) {
			X509_REVOKED_free(r);
			goto ossl;
		}
	}
	X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
	if (ASN1_INTEGER_set(num, 1) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1 ||
	    !(aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier,
					"keyid:always")) ||
	    X509_CRL_add_ext(crl, aki, -1) != 1 || X509_CRL_sort(crl) != 1 ||
	    X509_CRL_sign(crl, key, EVP_sha256()) <= 0)
		goto ossl;
	int l = i2d_X509_CRL(crl, &p);
	if (l <= 0)
		goto ossl;
	*der = malloc((size_t)l + 1);
	if (!*der) {
		rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*der, p, (size_t)l);
	(*der)[l] = 0;
	*len = (size_t)l;
	rc = 0;
	goto out;
ossl:
	rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "building a CRL failed");
out:
	OPENSSL_free(p);
	X509_EXTENSION_free(aki);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(lu);
	ASN1_TIME_free(nu);
	X509_CRL_free(crl);
	return rc;
}

/* --- the PKI --- */

void tdc_sim_pki_free(struct tdc_sim_pki *pki)
{
	if (!pki)
		return;
	EVP_PKEY_free(pki->root_key);
	EVP_PKEY_free(pki->pck_ca_key);
	EVP_PKEY_free(pki->tcb_key);
	EVP_PKEY_free(pki->pck_key);
	EVP_PKEY_free(pki->att_key);
	X509_free(pki->root);
	X509_free(pki->pck_ca);
	X509_free(pki->tcb_signer);
	X509_free(pki->pck);
	free(pki->root_der);
	free(pki);
}

void tdc_sim_root_der(const struct tdc_sim_pki *pki, const uint8_t **der, size_t *len)
{
	*der = pki->root_der;
	*len = pki->root_der_len;
}

/* Derived fields: the root's DER and the attestation key's raw point. */
static int pki_finish(struct tdc_sim_pki *pki, struct tdc_error *e)
{
	unsigned char *p = NULL;
	int l = i2d_X509(pki->root, &p);
	if (l <= 0)
		return TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "encoding the root failed");
	pki->root_der = malloc((size_t)l);
	if (!pki->root_der) {
		OPENSSL_free(p);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	memcpy(pki->root_der, p, (size_t)l);
	pki->root_der_len = (size_t)l;
	OPENSSL_free(p);
	return tdc_sim_pub_raw(pki->att_key, pki->att_pub, e);
}

/* The TCB signing certificate, issued as o->tcb_signer_issuer says. */
static int make_signer(struct tdc_sim_pki *pki, const struct tdc_sim_opts *o,
		       struct tdc_error *e)
{
	EVP_PKEY *k = NULL;
	X509 *other = NULL;
	int rc;

	switch (o->tcb_signer_issuer) {
	case TDC_SIM_SIGNER_PROPER:
		return make_cert(TDC_SIM_TCB_SIGNER_CN, pki->tcb_key, pki->root, pki->root,
				 pki->root_key, &o->tcb_signer_validity, K_END, NULL,
				 &pki->tcb_signer, e);
	case TDC_SIM_SIGNER_OTHER_ROOT:
		rc = tdc_sim_new_key(&k, e);
		if (rc == 0)
			rc = make_cert("tdcrypt simulated other Root CA", k, NULL, NULL, k,
				       &o->root_validity, K_ROOT, NULL, &other, e);
		if (rc == 0)
			rc = make_cert(TDC_SIM_TCB_SIGNER_CN, pki->tcb_key, other, other, k,
				       &o->tcb_signer_validity, K_END, NULL, &pki->tcb_signer, e);
		break;
	case TDC_SIM_SIGNER_FORGED:
		rc = tdc_sim_new_key(&k, e);
		if (rc == 0)
			rc = make_cert(TDC_SIM_TCB_SIGNER_CN, pki->tcb_key, pki->root, pki->root, k,
				       &o->tcb_signer_validity, K_END, NULL, &pki->tcb_signer, e);
		break;
	default:
		rc = TDC_FAIL(e, TDC_E_USAGE, "unknown tcb_signer_issuer");
	}
	X509_free(other);
	EVP_PKEY_free(k);
	return rc;
}

int tdc_sim_pki_new(const struct tdc_sim_opts *o, struct tdc_sim_pki **out, struct tdc_error *e)
{
	struct tdc_sim_pki *pki = calloc(1, sizeof(*pki));
	int rc;

	*out = NULL;
	if (!pki)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if ((rc = tdc_sim_new_key(&pki->root_key, e)) < 0 ||
	    (rc = tdc_sim_new_key(&pki->pck_ca_key, e)) < 0 ||
	    (rc = tdc_sim_new_key(&pki->tcb_key, e)) < 0 ||
	    (rc = tdc_sim_new_key(&pki->pck_key, e)) < 0 ||
	    (rc = tdc_sim_new_key(&pki->att_key, e)) < 0)
		goto fail;
	if ((rc = make_cert(TDC_SIM_ROOT_CN, pki->root_key, NULL, NULL, pki->root_key,
			    &o->root_validity, K_ROOT, NULL, &pki->root, e)) < 0 ||
	    (rc = make_cert(TDC_SIM_PCK_CA_CN, pki->pck_ca_key, pki->root, pki->root,
			    pki->root_key, &o->pck_ca_validity, K_CA, NULL, &pki->pck_ca, e)) < 0 ||
	    (rc = make_cert(TDC_SIM_PCK_CN, pki->pck_key, pki->pck_ca, pki->pck_ca,
			    pki->pck_ca_key, &o->pck_validity, K_END, &o->pck, &pki->pck, e)) < 0 ||
	    (rc = make_signer(pki, o, e)) < 0 || (rc = pki_finish(pki, e)) < 0)
		goto fail;
	*out = pki;
	return 0;
fail:
	tdc_sim_pki_free(pki);
	return rc;
}

/* --- save / load --- */

/* File base names and the slots they fill; cert SIZE_MAX = key only. */
#define CERT(f) offsetof(struct tdc_sim_pki, f)
static const struct {
	const char *base;
	size_t cert, key;
} pki_files[] = {
	{ "root", CERT(root), CERT(root_key) },
	{ "pck-ca", CERT(pck_ca), CERT(pck_ca_key) },
	{ "tcb-signer", CERT(tcb_signer), CERT(tcb_key) },
	{ "pck", CERT(pck), CERT(pck_key) },
	{ "attestation", SIZE_MAX, CERT(att_key) },
};

static X509 **cert_slot(const struct tdc_sim_pki *pki, size_t off)
{
	return (X509 **)((char *)pki + off);
}

static EVP_PKEY **key_slot(const struct tdc_sim_pki *pki, size_t off)
{
	return (EVP_PKEY **)((char *)pki + off);
}

int tdc_sim_write_file(const char *dir, const char *name, const void *data, size_t n,
		       unsigned mode, struct tdc_error *e)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	/* Replace, never follow a planted link; fchmod because an existing file
	 * keeps its old mode through O_CREAT. */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot create file", "%s: %s", path,
				 strerror(errno));
	if (fchmod(fd, (mode_t)mode) < 0) {
		close(fd);
		return TDC_FAILF(e, TDC_E_IO, "cannot chmod file", "%s: %s", path, strerror(errno));
	}
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, (const char *)data + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return TDC_FAILF(e, TDC_E_IO, "write failed", "%s: %s", path,
					 strerror(errno));
		}
		done += (size_t)w;
	}
	if (close(fd) < 0)
		return TDC_FAILF(e, TDC_E_IO, "write failed", "%s: %s", path, strerror(errno));
	return 0;
}

/* Writes what a BIO-writer produced; secmem BIOs wipe key text on free. */
static int save_bio(BIO *b, const char *dir, const char *base, const char *ext, mode_t mode,
		    struct tdc_error *e)
{
	char *p = NULL, name[64];
	long n = BIO_get_mem_data(b, &p);
	if (n <= 0)
		return TDC_FAIL(e, TDC_E_CRYPTO, "PEM encoding failed");
	snprintf(name, sizeof(name), "%s.%s", base, ext);
	return tdc_sim_write_file(dir, name, p, (size_t)n, mode, e);
}

int tdc_sim_pki_save(const struct tdc_sim_pki *pki, const char *dir, struct tdc_error *e)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return TDC_FAILF(e, TDC_E_IO, "cannot create directory", "%s: %s", dir,
				 strerror(errno));
	for (size_t i = 0; i < sizeof(pki_files) / sizeof(pki_files[0]); i++) {
		int rc;
		if (pki_files[i].cert != SIZE_MAX) {
			BIO *b = BIO_new(BIO_s_mem());
			if (!b || PEM_write_bio_X509(b, *cert_slot(pki, pki_files[i].cert)) != 1)
				rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "PEM encoding failed");
			else
				rc = save_bio(b, dir, pki_files[i].base, "pem", 0644, e);
			BIO_free(b);
			TDC_GUARD(rc);
		}
		BIO *b = BIO_new(BIO_s_secmem());
		if (!b || PEM_write_bio_PrivateKey(b, *key_slot(pki, pki_files[i].key), NULL, NULL,
						   0, NULL, NULL) != 1)
			rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "PEM encoding failed");
		else
			rc = save_bio(b, dir, pki_files[i].base, "key", 0600, e);
		BIO_free(b);
		TDC_GUARD(rc);
	}
	return 0;
}

static int read_pem(const char *dir, const char *base, const char *ext, bool is_key, void **out,
		    struct tdc_error *e)
{
	char path[4096];
	uint8_t *buf = NULL;
	size_t len = 0;

	*out = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s", dir, base, ext) >= sizeof(path))
		return TDC_FAIL(e, TDC_E_USAGE, "path too long");
	TDC_GUARD(tdc_file_read(path, PKI_FILE_MAX, &buf, &len, e));
	BIO *b = BIO_new_mem_buf(buf, (int)len);
	if (b)
		*out = is_key ? (void *)PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)
			      : (void *)PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (!*out)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad PEM file", "%s", path);
	return 0;
}

static bool is_p256(EVP_PKEY *k)
{
	char grp[32];
	size_t n = 0;
	return EVP_PKEY_is_a(k, "EC") &&
	       EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp),
					      &n) == 1 &&
	       strcmp(grp, "prime256v1") == 0;
}

int tdc_sim_pki_load(const char *dir, struct tdc_sim_pki **out, struct tdc_error *e)
{
	struct tdc_sim_pki *pki = calloc(1, sizeof(*pki));
	int rc = 0;

	*out = NULL;
	if (!pki)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (size_t i = 0; i < sizeof(pki_files) / sizeof(pki_files[0]); i++) {
		const char *base = pki_files[i].base;
		EVP_PKEY **k = key_slot(pki, pki_files[i].key);
		if ((rc = read_pem(dir, base, "key", true, (void **)k, e)) < 0)
			goto fail;
		if (!is_p256(*k)) {
			rc = TDC_FAILF(e, TDC_E_FORMAT, "not a P-256 key", "%s/%s.key", dir, base);
			goto fail;
		}
		if (pki_files[i].cert == SIZE_MAX)
			continue;
		X509 **c = cert_slot(pki, pki_files[i].cert);
		if ((rc = read_pem(dir, base, "pem", false, (void **)c, e)) < 0)
			goto fail;
		if (X509_check_private_key(*c, *k) != 1) {
			rc = TDC_FAILF(e, TDC_E_FORMAT, "key does not match certificate", "%s/%s",
				       dir, base);
			goto fail;
		}
	}
	if ((rc = pki_finish(pki, e)) < 0)
		goto fail;
	*out = pki;
	return 0;
fail:
	tdc_sim_pki_free(pki);
	return rc;
}
