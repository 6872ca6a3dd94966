/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the key-broker load generators share (bench/bench-kbs.c, tests/storm/storm.c):
 * RA-TLS agent identities with simulator quotes, the bare TLS 1.3 mutual-handshake
 * server that a broker's rate is compared with, and a broker's memory from /proc.
 * Loopback only.
 */
#pragma once

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tdcrypt/error.h"
#include "tdcrypt/sim.h"

/* CLOCK_MONOTONIC in seconds. */
double lg_mono(void);

/*
 * One agent identity, as the agent makes it at boot: a fresh P-256 key, a quote from the
 * simulator (pki, the TD of o) whose REPORTDATA binds the key, the RA-TLS certificate
 * carrying it (validity from now).
 */
int lg_identity_make(const struct tdc_sim_pki *pki, const struct tdc_sim_opts *o, int64_t now,
		     EVP_PKEY **key, X509 **cert, struct tdc_error *e) TDC_MUST_USE;

/*
 * The bare server: the broker's TLS settings and client-certificate callback (one
 * self-signed certificate, no path building), one epoll thread like the broker's loop,
 * on 127.0.0.1 (an ephemeral port). It reads one request and answers what a broker's
 * release of secret_id looks like on the wire, then closes.
 */
struct lg_bare {
	SSL_CTX *ctx;
	int lfd, ep, wake[2];
	int port;
	pthread_t t;
	char reply[512];
	size_t reply_len;
};
int lg_bare_start(struct lg_bare *s, const char *cert_pem, const char *key_pem,
		  const char *secret_id, struct tdc_error *e) TDC_MUST_USE;
void lg_bare_stop(struct lg_bare *s);
/* CPU seconds the bare server's thread has used so far (before lg_bare_stop). */
double lg_bare_cpu_seconds(const struct lg_bare *s);

/* /proc/PID/status field (VmRSS, VmHWM) in KiB, summed over pid and its children: the
 * broker is two processes (the keeper and its network process). -1 if pid is gone. */
long lg_status_kib(pid_t pid, const char *field);
