/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <time.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tdcrypt/verify.h"
#include "util/limits.h"
#include "util/util.h"

#include "cli.h"

void cli_print_error(const char *what, const struct tdc_error *e)
{
	char buf[512];
	fprintf(stderr, "tdcrypt: %s: %s [%s]\n", what, tdc_error_format(e, buf, sizeof(buf)),
		tdc_err_name(e->code));
}

int cli_exit_for(int code)
{
	switch (code) {
	case TDC_OK:
		return TDC_EXIT_OK;
	case TDC_E_FORMAT:
	case TDC_E_UNSUPPORTED:
	case TDC_E_LIMIT:
	case TDC_E_IO:
	case TDC_E_USAGE:
	case TDC_E_NOT_FOUND:
		return TDC_EXIT_BAD_INPUT;
	case TDC_E_NOMEM:
	case TDC_E_INTERNAL:
	case TDC_E_CRYPTO:
		return TDC_EXIT_INTERNAL;
	default:
		return TDC_EXIT_REJECTED;
	}
}

static int read_stdin(size_t max, uint8_t **out, size_t *len, struct tdc_error *e)
{
	size_t cap = 8192, got = 0;
	uint8_t *buf = malloc(cap + 1);
	if (!buf)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	for (;;) {
		if (got == cap) {
			if (cap > max) {
				free(buf);
				return TDC_FAILF(e, TDC_E_LIMIT, "input too large",
						 "stdin: more than %zu bytes", max);
			}
			uint8_t *nb = realloc(buf, 2 * cap + 1);
			if (!nb) {
				free(buf);
				return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t n = read(STDIN_FILENO, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return TDC_FAILF(e, TDC_E_IO, "cannot read stdin", "%s", strerror(errno));
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max) {
		free(buf);
		return TDC_FAILF(e, TDC_E_LIMIT, "input too large", "stdin: %zu bytes, limit %zu",
				 got, max);
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * If the input is hex text (whitespace, an optional 0x prefix, hex digits and
 * whitespace only), decodes it in place of *buf. A binary quote never looks
 * like this: it starts with the bytes 04 00 or 05 00.
 */
static int maybe_decode_hex(uint8_t **buf, size_t *len, struct tdc_error *e)
{
	const uint8_t *in = *buf;
	size_t i = 0, digits = 0;
	while (i < *len && is_space(in[i]))
		i++;
	if (i + 1 < *len && in[i] == '0' && (in[i + 1] == 'x' || in[i + 1] == 'X'))
		i += 2;
	size_t start = i;
	for (; i < *len; i++) {
		if (is_hex(in[i]))
			digits++;
		else if (!is_space(in[i]))
			return 0; /* binary */
	}
	if (digits == 0)
		return 0;

	char *compact = malloc(digits + 1);
	if (!compact)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	size_t n = 0;
	for (i = start; i < *len; i++)
		if (is_hex(in[i]))
			compact[n++] = (char)in[i];
	compact[n] = '\0';
	uint8_t *bin;
	size_t bin_len;
	int r = tdc_hex_decode_alloc(compact, n, &bin, &bin_len, "hex quote", e);
	free(compact);
	if (r < 0)
		return r;
	free(*buf);
	*buf = bin;
	*len = bin_len;
	return 0;
}

/* A hex quote is twice the binary size, plus whitespace, a "0x" prefix, line ends. */
#define QUOTE_INPUT_MAX (2u * TDC_MAX_QUOTE_SIZE + 4096u)

int cli_read_quote(const char *path, uint8_t **out, size_t *len, struct tdc_error *e)
{
	uint8_t *buf;
	size_t n;
	TDC_GUARD(!strcmp(path, "-") ? read_stdin(QUOTE_INPUT_MAX, &buf, &n, e)
				     : tdc_file_read(path, QUOTE_INPUT_MAX, &buf, &n, e));
	int r = maybe_decode_hex(&buf, &n, e);
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	*len = n;
	return 0;
}

int cli_parse_time(const char *s, int64_t *out, struct tdc_error *e)
{
	if (!s) {
		*out = (int64_t)time(NULL);
		return 0;
	}
	if (s[0] == '@') {
		char *end;
		errno = 0;
		long long t = strtoll(s + 1, &end, 10);
		if (errno || *end || end == s + 1)
			return TDC_FAILF(e, TDC_E_USAGE, "bad --at time", "'%s'", s);
		*out = t;
		return 0;
	}
	return tdc_time_parse(s, out, "--at", e);
}


#define ROOT_FILE_MAX (64u * 1024u)

int cli_read_root_der(const char *path, uint8_t **der, size_t *der_len, struct tdc_error *e)
{
	uint8_t *buf;
	size_t n;
	TDC_GUARD(tdc_file_read(path, ROOT_FILE_MAX, &buf, &n, e));
	if (n > 0 && buf[0] == 0x30) { /* DER SEQUENCE */
		*der = buf;
		*der_len = n;
		return 0;
	}
	BIO *bio = BIO_new_mem_buf(buf, (int)n);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	free(buf);
	unsigned char *p = NULL;
	int l = x ? i2d_X509(x, &p) : -1;
	X509_free(x);
	if (l <= 0)
		return TDC_FAILF(e, TDC_E_FORMAT, "test root CA is neither DER nor PEM", "%s",
				 path);
	*der = malloc((size_t)l);
	if (!*der) {
		OPENSSL_free(p);
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	}
	memcpy(*der, p, (size_t)l);
	*der_len = (size_t)l;
	OPENSSL_free(p);
	return 0;
}


int cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int cli_verify_opt(int argc, char **argv, int *i, struct cli_verify_opts *o, const char *cmd)
{
	const char *s = argv[*i];
	const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;
	if (!strcmp(s, "--json")) {
		o->json = true;
		return 1;
	}
	const char **slot = !strcmp(s, "--collateral")			   ? &o->collateral
			    : !strcmp(s, "--at")				   ? &o->at
			    : !strcmp(s, "--test-root-ca-for-testing-only") ? &o->root
									    : NULL;
	if (!slot && strcmp(s, "--min-tcb-eval") != 0)
		return 0;
	if (!val)
		return 0; /* incomplete: the caller reports it */
	(*i)++;
	if (slot) {
		*slot = val;
		return 1;
	}
	if (cli_parse_u32(val, 0, UINT32_MAX, &o->min_eval) < 0) {
		fprintf(stderr, "tdcrypt: %s: bad --min-tcb-eval '%s'\n", cmd, val);
		return -1;
	}
	return 1;
}

int cli_verify_load(const struct cli_verify_opts *o, const char *quote_path, const char *why,
		    struct cli_verify_inputs *in)
{
	struct tdc_error e;
	tdc_error_clear(&e);
	memset(in, 0, sizeof(*in));
	if (cli_parse_time(o->at, &in->now, &e) < 0) {
		cli_print_error("--at", &e);
		return TDC_EXIT_BAD_INPUT;
	}
	if (cli_read_quote(quote_path, &in->quote, &in->quote_len, &e) < 0) {
		cli_print_error(quote_path, &e);
		return cli_exit_for(e.code);
	}
	if (tdc_collateral_load(o->collateral, &in->coll, &e) < 0) {
		cli_print_error(o->collateral, &e);
		return cli_exit_for(e.code);
	}
	if (o->root) {
		if (cli_read_root_der(o->root, &in->root, &in->root_len, &e) < 0) {
			cli_print_error(o->root, &e);
			return cli_exit_for(e.code);
		}
		fprintf(stderr,
			"tdcrypt: WARNING: trusting a test root CA instead of the Intel SGX "
			"Root CA; %s\n",
			why);
	}
	struct tdc_verifier_opts vo = {
		.test_root_der = in->root,
		.test_root_der_len = in->root_len,
		.min_tcb_eval_num = o->min_eval,
	};
	if (tdc_verifier_new(&vo, &in->ver, &e) < 0) {
		cli_print_error("verifier", &e);
		return cli_exit_for(e.code);
	}
	return TDC_EXIT_OK;
}

void cli_verify_inputs_free(struct cli_verify_inputs *in)
{
	tdc_verifier_free(in->ver);
	tdc_collateral_free(&in->coll);
	free(in->quote);
	free(in->root);
	memset(in, 0, sizeof(*in));
}

int cli_write_text(const char *path, const char *text)
{
	if (!path || !strcmp(path, "-")) {
		fputs(text, stdout);
		if (*text && text[strlen(text) - 1] != '\n')
			putchar('\n');
		return fflush(stdout) == 0 ? TDC_EXIT_OK : TDC_EXIT_INTERNAL;
	}
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp)) {
		fprintf(stderr, "tdcrypt: path too long: %s\n", path);
		return TDC_EXIT_BAD_INPUT;
	}
	int fd = mkstemp(tmp);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	bool ok = f && fchmod(fd, 0644) == 0 && fputs(text, f) >= 0 &&
		  (!*text || text[strlen(text) - 1] == '\n' || fputc('\n', f) != EOF) &&
		  fflush(f) == 0 && fsync(fd) == 0;
	if (f)
		ok = fclose(f) == 0 && ok;
	else if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, path) != 0) {
		fprintf(stderr, "tdcrypt: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return TDC_EXIT_BAD_INPUT;
	}
	return TDC_EXIT_OK;
}
