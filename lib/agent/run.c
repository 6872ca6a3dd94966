/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent from start to mapped device. Order matters: the LUKS header is
 * checked first (a tampered disk never gets a key), then one quote for the
 * boot's ephemeral key, then brokers until one releases the key, then the
 * unlock through the very crypt_device whose metadata was checked.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>

#include <libcryptsetup.h>
#include <openssl/crypto.h>

#include "agent-int.h"
#include "tdcrypt/ratls.h"

#define DEVICE_POLL_MS 100
/* systemd-cryptsetup connects as soon as we are ready; this only bounds a stuck boot */
#define SERVE_WINDOW_MS 120000

static const char *const exit_names[] = {
    [TDC_AGENT_EXIT_OK] = "ok",
    [1] = "?",
    [TDC_AGENT_EXIT_CONFIG] = "config",
    [TDC_AGENT_EXIT_NO_QUOTE] = "no-quote",
    [TDC_AGENT_EXIT_NO_NETWORK] = "no-network",
    [TDC_AGENT_EXIT_DENIED] = "denied",
    [TDC_AGENT_EXIT_BAD_BROKER] = "bad-broker",
    [TDC_AGENT_EXIT_BAD_HEADER] = "bad-header",
    [TDC_AGENT_EXIT_UNLOCK] = "unlock-failed",
    [TDC_AGENT_EXIT_INTERNAL] = "internal",
};

const char *tdc_agent_exit_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(exit_names) / sizeof(exit_names[0]))
		return "?";
	return exit_names[code];
}

void tdc_agent_say(const struct tdc_agent_events *ev, int level, const char *fmt, ...)
{
	char buf[640];
	va_list ap;
	if (!ev || !ev->log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ev->log(ev->arg, level, buf);
}

static void mark(const struct tdc_agent_events *ev, const char *what)
{
	if (ev && ev->mark)
		ev->mark(ev->arg, what);
}

static int fail(const struct tdc_agent_events *ev, int code, const char *what,
		const struct tdc_error *e)
{
	char buf[400];
	tdc_agent_say(ev, 0, "%s: %s: %s [%s]", tdc_agent_exit_name(code), what,
	    tdc_error_format(e, buf, sizeof(buf)), tdc_err_name(e->code));
	return code;
}

struct attempt_arg {
	SSL_CTX *ctx;
	const char *body;
	const struct tdc_agent_config *c;
	const struct tdc_agent_clock *clk;
	const struct tdc_agent_events *ev;
};

static int attempt(void *arg, size_t i, int64_t deadline, struct tdc_agent_reply *reply,
		   struct tdc_error *e)
{
	struct attempt_arg *a = arg;
	return tdc_agent_attempt(a->ctx, &a->c->brokers[i], a->c->secret_id, a->body, a->clk,
				 deadline,
				 a->c->connect_timeout_ms, a->ev, reply, e);
}

/* The disk may show up after us (udev in the initramfs): wait, up to the deadline. */
static void wait_device(const char *dev, const struct tdc_agent_clock *clk, int64_t deadline,
			const struct tdc_agent_events *ev)
{
	struct stat st;
	bool said = false;
	while (stat(dev, &st) < 0 && errno == ENOENT && clk->now_ms(clk->arg) < deadline) {
		if (!said)
			tdc_agent_say(ev, 0, "waiting for %s", dev);
		said = true;
		clk->sleep_ms(clk->arg, DEVICE_POLL_MS);
	}
}

/* The checked key to systemd-cryptsetup for the volume c->luks_name, once; the socket is
 * gone when this returns. */
static int serve(const struct tdc_agent_config *c, struct crypt_device *cd, const char *path,
		 const struct tdc_agent_reply *reply, const struct tdc_agent_clock *clk,
		 int64_t deadline, const struct tdc_agent_events *ev)
{
	const struct tdc_keysock_peer want = { .uid = 0, .volume = c->luks_name };
	struct tdc_error e = {0};
	char hdr[128];
	int fd;

	/* systemd-cryptsetup loads the metadata from this copy (crypttab header=), not from a
	 * second read of the host's disk */
	if (tdc_keysock_header_path(path, c->luks_name, hdr, sizeof(hdr), &e) < 0 ||
	    tdc_keysock_listen(path, &fd, &e) < 0)
		return fail(ev, TDC_AGENT_EXIT_INTERNAL, "key socket", &e);
	if (tdc_luks_header_copy(c->luks_device, c->header_sha256,
				 crypt_get_data_offset(cd) * 512u, hdr, &e) < 0) {
		tdc_keysock_close(fd, path);
		return fail(ev, TDC_AGENT_EXIT_BAD_HEADER, c->luks_device, &e);
	}
	if (ev && ev->ready)
		ev->ready(ev->arg);
	tdc_agent_say(ev, 1, "serving the key for %s on %s", c->luks_name, path);
	int r = tdc_keysock_serve(fd, path, &want, reply->key.data, reply->key.len, clk, deadline,
				  ev, &e);
	tdc_keysock_close(fd, path);
	if (r < 0)
		return fail(ev, TDC_AGENT_EXIT_UNLOCK, "key socket", &e);
	mark(ev, "served");
	return TDC_AGENT_EXIT_OK;
}

int tdc_agent_get_key(const struct tdc_agent_config *c, const struct tdc_agent_clock *clk,
		      const struct tdc_agent_events *ev, struct tdc_agent_reply *reply)
{
	struct tdc_error e = {0};
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	SSL_CTX *ctx = NULL;
	uint8_t rd[64];
	struct tdc_agent_evidence evd = { 0 };
	char *body = NULL;
	enum tdc_agent_provider used = TDC_PROVIDER_AUTO;
	int code;

	if (tdc_ratls_keygen(&key, &e) < 0 || tdc_ratls_report_data_for_key(key, rd, &e) < 0) {
		code = fail(ev, TDC_AGENT_EXIT_INTERNAL, "key generation", &e);
		goto out;
	}
	if (tdc_agent_get_quote(c, rd, (int64_t)time(NULL), &evd, &used, &e) < 0) {
		code = fail(ev, TDC_AGENT_EXIT_NO_QUOTE, "quote", &e);
		goto out;
	}
	mark(ev, "quote");
	tdc_agent_say(ev, 1, "quote from provider %s, %zu bytes", tdc_agent_provider_name(used),
		      evd.quote_len);
	/* The firmware's CC event log goes with the quote; without it the broker can still check
	 * RTMR values, but not a policy that rules on events. */
	if (!evd.event_log) {
		tdc_error_clear(&e);
		if (tdc_agent_read_ccel(c->acpi_tables, &evd, &e) < 0) {
			char b[300];
			tdc_agent_say(ev, 0, "no event log sent: %s", tdc_error_format(&e, b, sizeof(b)));
		}
	}
	if (evd.event_log)
		tdc_agent_say(ev, 1, "CC event log: %zu bytes", evd.event_log_len);
	if (tdc_agent_request_body(&evd, &body, &e) < 0) {
		code = fail(ev, TDC_AGENT_EXIT_INTERNAL, "request", &e);
		goto out;
	}
	/* Validity is informative only (PROTOCOL.md §5.3), so the host-fed clock is fine. */
	if (tdc_ratls_cert_create(key, evd.quote, evd.quote_len, (int64_t)time(NULL),
				  TDC_RATLS_CERT_LIFETIME, &cert, &e) < 0) {
		code = fail(ev, TDC_AGENT_EXIT_INTERNAL, "certificate", &e);
		goto out;
	}
	if (tdc_agent_tls_ctx(c, key, cert, &ctx, &e) < 0) {
		code =
		    fail(ev, e.code == TDC_E_IO ? TDC_AGENT_EXIT_CONFIG : TDC_AGENT_EXIT_INTERNAL,
			 "TLS", &e);
		goto out;
	}

	struct attempt_arg a = {ctx, body, c, clk, ev};
	code = tdc_agent_fetch(c, clk, attempt, &a, ev, reply);
	if (code != TDC_AGENT_EXIT_OK) {
		if (code == TDC_AGENT_EXIT_DENIED)
			tdc_agent_say(ev, 0, "%s: the broker refused: %s", tdc_agent_exit_name(code),
			    reply->error[0] ? reply->error : "?");
		else
			tdc_agent_say(ev, 0, "%s: no key before the deadline (%u s)",
			    tdc_agent_exit_name(code), c->total_timeout_ms / 1000);
		goto out;
	}
	mark(ev, "key");
out:
	OPENSSL_cleanse(rd, sizeof(rd));
	SSL_CTX_free(ctx);
	X509_free(cert);
	EVP_PKEY_free(key);
	tdc_agent_evidence_free(&evd);
	free(body);
	return code;
}

int tdc_agent_run(const struct tdc_agent_config *c, const struct tdc_agent_run_opts *o,
		  const struct tdc_agent_clock *clk, const struct tdc_agent_events *ev)
{
	struct tdc_error e = {0};
	struct crypt_device *cd = NULL;
	struct tdc_agent_reply reply = {0};
	int code;

	mark(ev, "start");
	/* No core dumps or ptrace peeks at the key (best effort). */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (tdc_agent_config_check(c, &e) < 0)
		return fail(ev, TDC_AGENT_EXIT_CONFIG, "config", &e);

	int64_t deadline = clk->now_ms(clk->arg) + c->total_timeout_ms;
	wait_device(c->luks_device, clk, deadline, ev);
	if (tdc_luks_validate(c->luks_device, c->header_sha256, c->keyslot, &cd, &e) < 0) {
		code = fail(ev, TDC_AGENT_EXIT_BAD_HEADER, c->luks_device, &e);
		goto out;
	}
	tdc_agent_say(ev, 1, "LUKS header of %s verified", c->luks_device);

	if ((code = tdc_agent_get_key(c, clk, ev, &reply)) != TDC_AGENT_EXIT_OK)
		goto out;

	bool map = !(o && (o->no_activate || o->serve_socket));
	if (tdc_luks_activate(cd, map ? c->luks_name : NULL, c->keyslot,
			      reply.key.data, reply.key.len, &e) < 0) {
		code = fail(ev, TDC_AGENT_EXIT_UNLOCK, c->luks_device, &e);
		goto out;
	}
	if (o && o->serve_socket && !o->no_activate) {
		code = serve(c, cd, o->serve_socket, &reply, clk, clk->now_ms(clk->arg) + SERVE_WINDOW_MS,
			     ev);
		goto out;
	}
	mark(ev, "mapped");
	if (o && o->no_activate)
		tdc_agent_say(ev, 0, "key checked against %s (nothing mapped)", c->luks_device);
	else
		tdc_agent_say(ev, 0, "%s unlocked as /dev/mapper/%s", c->luks_device, c->luks_name);
	code = TDC_AGENT_EXIT_OK;
out:
	tdc_agent_reply_free(&reply);
	crypt_free(cd);
	return code;
}
