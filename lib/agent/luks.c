/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LUKS2 header checks before the key is used (docs/LUKS-HEADER.md):
 *  1. digest: SHA-256 over both binary headers and JSON areas, read by us with
 *     plain read(2), compared with the digest recorded at image build;
 *  2. libcryptsetup loads the header; the metadata it loaded must equal the JSON
 *     area we digested (the host serves the disk and could answer a second
 *     read differently);
 *  3. structure rules on that metadata: one aes-xts-plain64 segment with a
 *     512-bit key and 4096-byte sectors, exactly the expected keyslot (PBKDF2),
 *     one digest, only tdcrypt tokens, no requirements, no reencryption.
 * Only then is the crypt_device handed back for activation: the same in-memory
 * metadata that was checked is the one that is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>

#include "agent-int.h"
#include "util/util.h"

#define LUKS2_BIN_SIZE 4096u
#define LUKS2_MIN_HDR (16u * 1024u)

static const uint8_t luks_magic[6] = {'L', 'U', 'K', 'S', 0xba, 0xbe};

/* libcryptsetup logs through a callback: keep its last error for our detail. */
static __thread char crypt_msg[160];

static void tdc_crypt_log(int level, const char *msg, void *usrptr)
{
	(void)usrptr;
	if (level == CRYPT_LOG_ERROR && msg) {
		snprintf(crypt_msg, sizeof(crypt_msg), "%s", msg);
		size_t n = strlen(crypt_msg);
		if (n && crypt_msg[n - 1] == '\n')
			crypt_msg[n - 1] = '\0';
	}
}

static int read_at(int fd, uint8_t *buf, size_t n, off_t off, const char *dev, struct tdc_error *e)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, buf + done, n - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return TDC_FAILF(e, TDC_E_IO, "cannot read LUKS header", "%s: %s", dev,
					 strerror(errno));
		if (r == 0)
			return TDC_FAILF(e, TDC_E_FORMAT, "device too small for a LUKS2 header",
					 "%s", dev);
		done += (size_t)r;
	}
	return 0;
}

/* Reads [0, 2 * hdr_size) after checking the primary binary header's magic,
 * version and hdr_size. */
static int read_header(const char *dev, uint8_t **out, size_t *hdr_size, struct tdc_error *e)
{
	uint8_t bin[16], magic[6];
	uint32_t hi, lo;
	uint16_t version;
	struct tdc_rd r;
	int rc;

	*out = NULL;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open LUKS device", "%s: %s", dev,
				 strerror(errno));
	if ((rc = read_at(fd, bin, sizeof(bin), 0, dev, e)) < 0)
		goto out;
	tdc_rd_init(&r, bin, sizeof(bin));
	if ((rc = tdc_rd_copy(&r, magic, 6, "luks.magic", e)) < 0)
		goto out;
	if (memcmp(magic, luks_magic, 6) != 0) {
		rc = TDC_FAIL_AT(e, TDC_E_FORMAT, 0, "not a LUKS device", "%s", dev);
		goto out;
	}
	uint8_t v[2];
	if ((rc = tdc_rd_copy(&r, v, 2, "luks.version", e)) < 0 ||
	    (rc = tdc_rd_u32be(&r, &hi, "luks.hdr_size", e)) < 0 ||
	    (rc = tdc_rd_u32be(&r, &lo, "luks.hdr_size", e)) < 0)
		goto out;
	version = (uint16_t)(v[0] << 8 | v[1]);
	if (version != 2) {
		rc = TDC_FAIL_AT(e, TDC_E_FORMAT, 6, "not a LUKS2 header", "version %u", version);
		goto out;
	}
	uint64_t hs = (uint64_t)hi << 32 | lo;
	if (hs < LUKS2_MIN_HDR || hs > TDC_MAX_LUKS_HDR_SIZE || (hs & (hs - 1))) {
		rc = TDC_FAIL_AT(e, TDC_E_FORMAT, 8, "bad LUKS2 hdr_size", "%llu",
				 (unsigned long long)hs);
		goto out;
	}
	if (!(*out = malloc(2 * hs))) {
		rc = TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = read_at(fd, *out, 2 * hs, 0, dev, e)) < 0) {
		free(*out);
		*out = NULL;
		goto out;
	}
	*hdr_size = hs;
out:
	close(fd);
	return rc;
}

int tdc_luks_header_digest(const char *device, uint8_t out[32], struct tdc_error *e)
{
	uint8_t *buf;
	size_t hs;
	unsigned int n;
	TDC_GUARD(read_header(device, &buf, &hs, e));
	int ok = EVP_Digest(buf, 2 * hs, out, &n, EVP_sha256(), NULL);
	free(buf);
	return ok == 1 ? 0 : TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
}

/* The primary JSON area: text up to its first NUL. */
static int json_area(const uint8_t *hdr, size_t hs, json_object **out, struct tdc_error *e)
{
	struct tdc_rd r, area, text;
	size_t end;
	tdc_rd_init(&r, hdr, hs);
	TDC_GUARD(tdc_rd_skip(&r, LUKS2_BIN_SIZE, "luks.binary_header", e));
	tdc_rd_rest(&r, &area);
	if (!tdc_rd_find(&area, "", 1, &end))
		return TDC_FAIL_AT(e, TDC_E_FORMAT, LUKS2_BIN_SIZE,
				   "LUKS2 JSON area not terminated", "%s", "");
	TDC_GUARD(tdc_rd_sub(&area, end, &text, "luks.json", e));
	json_tokener *tok = json_tokener_new_ex(TDC_MAX_JSON_DEPTH);
	if (!tok)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	*out = json_tokener_parse_ex(tok, (const char *)tdc_rd_ptr(&text), (int)tdc_rd_len(&text));
	bool whole = *out && json_tokener_get_parse_end(tok) == tdc_rd_len(&text);
	json_tokener_free(tok);
	if (!whole || !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
		return TDC_FAIL_AT(e, TDC_E_FORMAT, LUKS2_BIN_SIZE, "bad LUKS2 JSON area", "%s",
				   "");
	}
	return 0;
}

#define RULE(e, what, ...) TDC_FAILF(e, TDC_E_POLICY, "LUKS header: " what, __VA_ARGS__)

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

static int64_t int_of(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

static json_object *obj_of(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

/* An array of exactly one string equal to s. */
static bool array_is(json_object *o, const char *key, const char *s)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array) ||
	    json_object_array_length(v) != 1)
		return false;
	json_object *x = json_object_array_get_idx(v, 0);
	return json_object_is_type(x, json_type_string) && !strcmp(json_object_get_string(x), s);
}

static int check_segments(json_object *md, struct tdc_error *e)
{
	json_object *segs = obj_of(md, "segments"), *s;
	json_object *flags;
	if (!segs || json_object_object_length(segs) != 1 || !(s = obj_of(segs, "0")))
		return RULE(e, "exactly one segment \"0\" expected", "%d segments",
			    segs ? json_object_object_length(segs) : 0);
	if (strcmp(str_of(s, "type"), "crypt") != 0)
		return RULE(e, "segment type", "'%s'", str_of(s, "type"));
	if (strcmp(str_of(s, "encryption"), "aes-xts-plain64") != 0)
		return RULE(e, "cipher", "'%s', expected aes-xts-plain64", str_of(s, "encryption"));
	if (int_of(s, "sector_size") != 4096)
		return RULE(e, "sector size", "%lld, expected 4096",
			    (long long)int_of(s, "sector_size"));
	if (strcmp(str_of(s, "size"), "dynamic") != 0 || strcmp(str_of(s, "iv_tweak"), "0") != 0)
		return RULE(e, "segment size/iv_tweak", "%s/%s", str_of(s, "size"),
			    str_of(s, "iv_tweak"));
	if (json_object_object_get_ex(s, "integrity", NULL))
		return RULE(e, "segment integrity", "%s", "not allowed");
	if (json_object_object_get_ex(s, "flags", &flags) &&
	    (!json_object_is_type(flags, json_type_array) || json_object_array_length(flags)))
		return RULE(e, "segment flags", "%s", json_object_to_json_string(flags));
	return 0;
}

static int check_keyslots(json_object *md, int keyslot, struct tdc_error *e)
{
	char id[8];
	json_object *ks = obj_of(md, "keyslots"), *k, *area, *kdf, *af;
	snprintf(id, sizeof(id), "%d", keyslot);
	if (!ks || json_object_object_length(ks) != 1 || !(k = obj_of(ks, id)))
		return RULE(e, "keyslots", "expected only keyslot %s, found %d keyslots", id,
			    ks ? json_object_object_length(ks) : 0);
	if (strcmp(str_of(k, "type"), "luks2") != 0 || int_of(k, "key_size") != 64)
		return RULE(e, "keyslot type/key size", "%s/%lld", str_of(k, "type"),
			    (long long)int_of(k, "key_size"));
	if (!(area = obj_of(k, "area")) || strcmp(str_of(area, "type"), "raw") != 0 ||
	    strcmp(str_of(area, "encryption"), "aes-xts-plain64") != 0 ||
	    int_of(area, "key_size") != 64)
		return RULE(e, "keyslot area", "%s",
			    area ? json_object_to_json_string(area) : "none");
	if (!(kdf = obj_of(k, "kdf")) || strcmp(str_of(kdf, "type"), "pbkdf2") != 0 ||
	    (strcmp(str_of(kdf, "hash"), "sha256") != 0 &&
	     strcmp(str_of(kdf, "hash"), "sha512") != 0))
		return RULE(e, "keyslot kdf must be pbkdf2 (sha256/sha512)", "%s",
			    kdf ? str_of(kdf, "type") : "none");
	if (!(af = obj_of(k, "af")) || strcmp(str_of(af, "type"), "luks1") != 0)
		return RULE(e, "keyslot af", "%s", af ? str_of(af, "type") : "none");
	return 0;
}

static int check_digests_tokens(json_object *md, int keyslot, struct tdc_error *e)
{
	char id[8];
	json_object *ds = obj_of(md, "digests"), *d, *toks = obj_of(md, "tokens");
	snprintf(id, sizeof(id), "%d", keyslot);
	if (!ds || json_object_object_length(ds) != 1 || !(d = obj_of(ds, "0")))
		return RULE(e, "exactly one digest expected", "%d digests",
			    ds ? json_object_object_length(ds) : 0);
	if (strcmp(str_of(d, "type"), "pbkdf2") != 0 || !array_is(d, "keyslots", id) ||
	    !array_is(d, "segments", "0"))
		return RULE(e, "digest must bind keyslot and segment 0", "%s",
			    json_object_to_json_string(d));
	if (toks) {
		json_object_object_foreach (toks, tid, t) {
			const char *type =
			    json_object_is_type(t, json_type_object) ? str_of(t, "type") : "";
			if (strcmp(type, "tdcrypt") != 0)
				return RULE(e, "foreign token", "token %s of type '%s'", tid, type);
		}
	}
	json_object *cfg = obj_of(md, "config");
	if (cfg && json_object_object_get_ex(cfg, "requirements", NULL))
		return RULE(e, "requirements", "%s", "config.requirements present");
	return 0;
}

static int check_api(struct crypt_device *cd, int keyslot, struct tdc_error *e)
{
	uint32_t req = 0;
	const char *type = crypt_get_type(cd);
	if (!type || strcmp(type, CRYPT_LUKS2) != 0)
		return RULE(e, "not LUKS2", "%s", type ? type : "?");
	if (crypt_persistent_flags_get(cd, CRYPT_FLAGS_REQUIREMENTS, &req) < 0 || req != 0)
		return RULE(e, "requirements", "flags 0x%x", req);
	if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE)
		return RULE(e, "reencryption in progress", "%s", "");
	const char *c = crypt_get_cipher(cd), *m = crypt_get_cipher_mode(cd);
	if (!c || !m || strcmp(c, "aes") != 0 || strcmp(m, "xts-plain64") != 0)
		return RULE(e, "cipher", "'%s-%s', expected aes-xts-plain64", c ? c : "?",
			    m ? m : "?");
	if (crypt_get_volume_key_size(cd) != 64)
		return RULE(e, "volume key size", "%d bits, expected 512",
			    crypt_get_volume_key_size(cd) * 8);
	if (crypt_get_sector_size(cd) != 4096)
		return RULE(e, "sector size", "%d, expected 4096", crypt_get_sector_size(cd));
	crypt_keyslot_info ki = crypt_keyslot_status(cd, keyslot);
	if (ki != CRYPT_SLOT_ACTIVE && ki != CRYPT_SLOT_ACTIVE_LAST)
		return RULE(e, "keyslot not active", "keyslot %d", keyslot);
	return 0;
}

int tdc_luks_validate(const char *device, const uint8_t expected[32], int keyslot,
		      struct crypt_device **out, struct tdc_error *e)
{
	uint8_t *hdr = NULL, digest[32];
	size_t hs;
	unsigned int dn;
	json_object *disk = NULL, *loaded = NULL;
	struct crypt_device *cd = NULL;
	const char *dump;
	int rc, r;

	*out = NULL;
	TDC_GUARD(read_header(device, &hdr, &hs, e));
	if (EVP_Digest(hdr, 2 * hs, digest, &dn, EVP_sha256(), NULL) != 1) {
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
		goto out;
	}
	if (!tdc_ct_equal(digest, expected, 32)) {
		char hex[65];
		rc = TDC_FAILF(e, TDC_E_BINDING, "LUKS header digest mismatch", "header is %s",
			       tdc_hex_encode(digest, 32, hex));
		goto out;
	}
	if ((rc = json_area(hdr, hs, &disk, e)) < 0)
		goto out;

	crypt_msg[0] = '\0';
	crypt_set_log_callback(NULL, tdc_crypt_log, NULL);
	if ((r = crypt_init(&cd, device)) < 0) {
		rc = TDC_FAILF(e, TDC_E_IO, "crypt_init failed", "%s: %s", device, strerror(-r));
		goto out;
	}
	crypt_set_log_callback(cd, tdc_crypt_log, NULL);
	if ((r = crypt_load(cd, CRYPT_LUKS2, NULL)) < 0) {
		rc = TDC_FAILF(e, TDC_E_FORMAT, "libcryptsetup refused the header", "%s",
			       crypt_msg[0] ? crypt_msg : strerror(-r));
		goto out;
	}
	if ((r = crypt_dump_json(cd, &dump, 0)) < 0 || !(loaded = json_tokener_parse(dump))) {
		rc = TDC_FAIL(e, TDC_E_INTERNAL, "crypt_dump_json failed");
		goto out;
	}
	if (!json_object_equal(disk, loaded)) {
		rc = TDC_FAIL(
		    e, TDC_E_BINDING,
		    "LUKS metadata loaded by libcryptsetup differs from the digested header");
		goto out;
	}
	if ((rc = check_segments(loaded, e)) < 0 || (rc = check_api(cd, keyslot, e)) < 0 ||
	    (rc = check_keyslots(loaded, keyslot, e)) < 0 ||
	    (rc = check_digests_tokens(loaded, keyslot, e)) < 0)
		goto out;
	*out = cd;
	cd = NULL;
out:
	json_object_put(disk);
	json_object_put(loaded);
	crypt_free(cd);
	free(hdr);
	return rc;
}

int tdc_luks_activate(struct crypt_device *cd, const char *name, int keyslot, const uint8_t *key,
		      size_t key_len, struct tdc_error *e)
{
	crypt_msg[0] = '\0';
	int r = crypt_activate_by_passphrase(cd, name, keyslot, (const char *)key, key_len, 0);
	if (r == -EPERM)
		return TDC_FAIL(e, TDC_E_SIGNATURE, "the released key does not open the keyslot");
	if (r < 0)
		return TDC_FAILF(e, TDC_E_IO, "activation failed", "%s",
				 crypt_msg[0] ? crypt_msg : strerror(-r));
	return 0;
}

int tdc_luks_header_copy(const char *device, const uint8_t expected[32], uint64_t data_offset,
			 const char *path, struct tdc_error *e)
{
	uint8_t *hdr = NULL, digest[32], *chunk = NULL;
	size_t hs;
	unsigned int dn;
	int in = -1, out = -1, rc;

	TDC_GUARD(read_header(device, &hdr, &hs, e));
	if (EVP_Digest(hdr, 2 * hs, digest, &dn, EVP_sha256(), NULL) != 1) {
		rc = TDC_FAIL_OSSL(e, TDC_E_CRYPTO, "SHA-256 failed");
		goto out;
	}
	if (!tdc_ct_equal(digest, expected, 32)) {
		rc = TDC_FAIL(e, TDC_E_BINDING, "LUKS header changed since it was checked");
		goto out;
	}
	if (data_offset < 2 * hs || data_offset > TDC_MAX_LUKS_HEADER_COPY) {
		rc = TDC_FAILF(e, TDC_E_LIMIT, "LUKS2 data offset out of range", "%llu",
			       (unsigned long long)data_offset);
		goto out;
	}
	(void)unlink(path);
	out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	in = open(device, O_RDONLY | O_CLOEXEC);
	chunk = malloc(1u << 20);
	if (out < 0 || in < 0 || !chunk) {
		rc = TDC_FAILF(e, TDC_E_IO, "cannot copy the LUKS header", "%s: %s", path,
			       strerror(errno));
		goto out;
	}
	/* the checked bytes themselves, then the keyslot area (only usable with the key; the
	 * volume key it yields is checked against the header's digest by libcryptsetup) */
	uint64_t off = 2 * hs;
	bool ok = write(out, hdr, 2 * hs) == (ssize_t)(2 * hs);
	while (ok && off < data_offset) {
		size_t n = data_offset - off > (1u << 20) ? (1u << 20) : (size_t)(data_offset - off);
		if ((rc = read_at(in, chunk, n, (off_t)off, device, e)) < 0)
			goto out;
		ok = write(out, chunk, n) == (ssize_t)n;
		off += n;
	}
	if (!ok || close(out) != 0) {
		out = -1;
		rc = TDC_FAILF(e, TDC_E_IO, "cannot write the LUKS header copy", "%s: %s", path,
			       strerror(errno));
		goto out;
	}
	out = -1;
	rc = 0;
out:
	if (out >= 0)
		close(out);
	if (rc < 0)
		(void)unlink(path);
	if (in >= 0)
		close(in);
	free(chunk);
	free(hdr);
	return rc;
}
