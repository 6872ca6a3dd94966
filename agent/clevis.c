/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clevis-encrypt-tdcrypt / clevis-decrypt-tdcrypt: the clevis pin "tdcrypt", one source
 * built twice (TDC_CLEVIS_DECRYPT). All logic is in lib/agent (clevis.c, run.c).
 *   clevis encrypt tdcrypt '{"broker":"H:P","pin":"HEX","secret":"ID"}' < PLAINTEXT > JWE
 *   clevis decrypt < JWE > PLAINTEXT
 * Both get the secret from a broker with this machine's attestation, as tdcrypt-agent
 * does. How to get a quote is the machine's: $TDCRYPT_CLEVIS_CONFIG or
 * /etc/tdcrypt/clevis.json (optional: provider, timeouts, sim_dir, ...), never the disk's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tdcrypt/agent.h"

#ifdef TDC_CLEVIS_DECRYPT
#define PROG "clevis-decrypt-tdcrypt"
#else
#define PROG "clevis-encrypt-tdcrypt"
#endif
#define DEFAULT_MACHINE_CONFIG "/etc/tdcrypt/clevis.json"
#define SUMMARY "Encrypts with a tdcrypt secret that a broker releases to an attested TD"

static bool debug;

static void on_log(void *arg, int level, const char *msg)
{
	(void)arg;
	if (level == 0 || debug)
		fprintf(stderr, PROG ": %s\n", msg);
}

static void usage(FILE *f)
{
#ifdef TDC_CLEVIS_DECRYPT
	fprintf(f, "Usage: clevis decrypt < JWE > PLAINTEXT   (clevis runs " PROG ")\n"
		   "       " PROG " --help | --version\n");
#else
	fprintf(f, "Usage: clevis encrypt tdcrypt CONFIG < PLAINTEXT > JWE\n"
		   "       " PROG " --summary | --help | --version\n\n" SUMMARY ".\n\n"
		   "  broker: \"HOST[:PORT]\" or a list   the brokers (REQUIRED)\n"
		   "  pin:    \"HEX\" or a list           SHA-256 of each broker's SPKI (REQUIRED)\n"
		   "  secret: \"ID\"                      the tdcrypt secret (REQUIRED)\n\n"
		   "The broker must release the secret to this machine now: binding runs the\n"
		   "same attested key fetch as unlocking.\n");
#endif
	fprintf(f, "Quote settings: $TDCRYPT_CLEVIS_CONFIG or " DEFAULT_MACHINE_CONFIG
		   " (clevis-encrypt-tdcrypt(1)).\n");
}

static int failed(const char *what, const struct tdc_error *e, int code)
{
	char buf[512];
	fprintf(stderr, PROG ": %s: %s\n", what, tdc_error_format(e, buf, sizeof(buf)));
	return code;
}

/* All of stdin, at most max bytes, into locked memory (the plaintext is a passphrase). */
static int read_stdin(size_t max, struct tdc_secret *out, size_t *len, struct tdc_error *e)
{
	TDC_GUARD(tdc_secret_alloc(max + 1, out, e));
	size_t n = 0;
	for (;;) {
		ssize_t r = read(0, out->data + n, max + 1 - n);
		if (r < 0) {
			tdc_secret_free(out);
			return TDC_FAIL(e, TDC_E_IO, "cannot read standard input");
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			tdc_secret_free(out);
			return TDC_FAIL(e, TDC_E_LIMIT, "standard input too large");
		}
	}
	*len = n; /* out->len stays the mapping's: tdc_secret_free unmaps that */
	return 0;
}

static int machine_config(struct tdc_agent_config *c, struct tdc_error *e)
{
	const char *path = getenv("TDCRYPT_CLEVIS_CONFIG");
	FILE *f = fopen(path ? path : DEFAULT_MACHINE_CONFIG, "re");
	if (!f) {
		if (path)
			return TDC_FAILF(e, TDC_E_IO, "cannot read the machine config", "%s", path);
		return tdc_agent_config_check(c, e); /* none: the defaults (provider auto) */
	}
	uint8_t buf[4096];
	size_t n = fread(buf, 1, sizeof(buf), f);
	bool big = !feof(f);
	fclose(f);
	if (big)
		return TDC_FAIL(e, TDC_E_LIMIT, "machine config larger than 4 KiB");
	TDC_GUARD(tdc_agent_config_machine(buf, n, c, e));
	debug = c->debug;
	return tdc_agent_config_check(c, e);
}

static int write_all(const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(1, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct tdc_agent_config c;
	struct tdc_agent_reply reply = {0};
	struct tdc_secret in = {0}, pt = {0};
	struct tdc_error e = {0};
	struct tdc_agent_events ev = {.log = on_log};
	char *jwe = NULL;
	size_t in_len = 0;
	int code;

	if (argc == 2 && !strcmp(argv[1], "--summary")) {
#ifndef TDC_CLEVIS_DECRYPT
		printf("%s\n", SUMMARY);
		return 0;
#else
		return 2; /* as clevis' own decrypt pins */
#endif
	}
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf(PROG " %s\n", TDC_AGENT_VERSION);
		return 0;
	}
#ifdef TDC_CLEVIS_DECRYPT
	if (argc != 1 || isatty(0)) {
#else
	/* clevis luks bind adds -y (trust without asking): nothing is asked here anyway */
	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "-y")) || isatty(0)) {
#endif
		usage(stderr);
		return 2;
	}
	tdc_agent_config_defaults(&c);
#ifdef TDC_CLEVIS_DECRYPT
	if (read_stdin(TDC_CLEVIS_MAX_JWE, &in, &in_len, &e) < 0) {
		code = failed("JWE", &e, 1);
		goto out;
	}
	if (tdc_clevis_header((const char *)in.data, in_len, &c, &e) < 0) {
		code = failed("JWE", &e, 1);
		goto out;
	}
#else
	if (tdc_clevis_config_parse(argv[1], strlen(argv[1]), &c, &e) < 0) {
		code = failed("configuration", &e, 1);
		goto out;
	}
	if (read_stdin(TDC_CLEVIS_MAX_PLAINTEXT, &in, &in_len, &e) < 0) {
		code = failed("plaintext", &e, 1);
		goto out;
	}
#endif
	if (machine_config(&c, &e) < 0) {
		code = failed("machine config", &e, 1);
		goto out;
	}
	code = tdc_agent_get_key(&c, tdc_agent_real_clock(), &ev, &reply);
	if (code != TDC_AGENT_EXIT_OK) {
		fprintf(stderr, PROG ": no key from %s (%s)\n", c.secret_id,
			tdc_agent_exit_name(code));
		goto out;
	}
#ifdef TDC_CLEVIS_DECRYPT
	if (tdc_clevis_decrypt((const char *)in.data, in_len, reply.key.data, reply.key.len, &pt,
			       &e) < 0) {
		code = failed("decrypt", &e, 1);
		goto out;
	}
	code = write_all(pt.data, pt.len) < 0 ? 1 : 0;
#else
	if (tdc_clevis_encrypt(&c, reply.key.data, reply.key.len, in.data, in_len, &jwe, &e) < 0) {
		code = failed("encrypt", &e, 1);
		goto out;
	}
	code = write_all((const uint8_t *)jwe, strlen(jwe)) < 0 ? 1 : 0;
#endif
out:
	free(jwe);
	tdc_secret_free(&in);
	tdc_secret_free(&pt);
	tdc_agent_reply_free(&reply);
	tdc_agent_config_free(&c);
	return code;
}
