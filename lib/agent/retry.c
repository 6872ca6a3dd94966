/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Retries across brokers: rounds over the brokers still worth trying, with a
 * jittered exponential pause between rounds, never past the total deadline.
 * The clock is injected; tests run whole schedules without sleeping.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "agent-int.h"

static int64_t real_now(void *arg)
{
	struct timespec ts;
	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_sleep(void *arg, int64_t ms)
{
	(void)arg;
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint32_t real_random(void *arg)
{
	uint32_t v = 0;
	(void)arg;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)real_now(NULL) * 2654435761u; /* jitter only, not a secret */
	return v;
}

const struct tdc_agent_clock *tdc_agent_real_clock(void)
{
	static const struct tdc_agent_clock clk = {real_now, real_sleep, real_random, NULL};
	return &clk;
}

int64_t tdc_backoff_delay(uint32_t initial_ms, uint32_t max_ms, unsigned n, uint32_t rnd)
{
	uint64_t d = initial_ms ? initial_ms : 1;
	for (unsigned i = 0; i < n && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	uint64_t half = d / 2;
	return (int64_t)(half + rnd % (d - half + 1));
}

static const char *result_name(int r)
{
	switch (r) {
	case TDC_ATTEMPT_OK:
		return "ok";
	case TDC_ATTEMPT_NO_NETWORK:
		return "no network";
	case TDC_ATTEMPT_BAD_BROKER:
		return "bad broker";
	case TDC_ATTEMPT_DENIED:
		return "denied";
	default:
		return "retry";
	}
}

int tdc_agent_fetch(const struct tdc_agent_config *c, const struct tdc_agent_clock *clk,
		    tdc_agent_attempt_fn attempt, void *arg, const struct tdc_agent_events *ev,
		    struct tdc_agent_reply *reply)
{
	bool stopped[TDC_AGENT_MAX_BROKERS] = {false};
	/* a broker that answered busy with Retry-After is not asked again before then */
	int64_t not_before[TDC_AGENT_MAX_BROKERS] = {0};
	bool denied = false, reason = false, bad = false;
	char last[sizeof(reply->error)] = "";
	int64_t deadline = clk->now_ms(clk->arg) + c->total_timeout_ms;
	size_t n = c->n_brokers < TDC_AGENT_MAX_BROKERS ? c->n_brokers : TDC_AGENT_MAX_BROKERS;

	memset(reply, 0, sizeof(*reply));
	for (unsigned round = 0;; round++) {
		size_t live = 0;
		for (size_t i = 0; i < n; i++) {
			if (stopped[i])
				continue;
			int64_t now = clk->now_ms(clk->arg);
			if (now >= deadline)
				goto over;
			if (not_before[i] > now) {
				live++;
				continue;
			}
			int64_t att = now + c->attempt_timeout_ms;
			struct tdc_error e = {0};
			char msg[320];
			tdc_agent_reply_free(reply);
			int r = attempt(arg, i, att < deadline ? att : deadline, reply, &e);
			const struct tdc_agent_broker *b = &c->brokers[i];
			if (r == TDC_ATTEMPT_OK) {
				tdc_agent_say(ev, 0, "broker %s:%u released the key (request %s)", b->host,
				      b->port, reply->request_id);
				return TDC_AGENT_EXIT_OK;
			}
			if (reply->error[0]) {
				snprintf(last, sizeof(last), "%s", reply->error);
				tdc_agent_say(ev, 0, "broker %s:%u: %s: %s (HTTP %d, request %s)", b->host,
				      b->port, result_name(r), reply->error, reply->http_status,
				      reply->request_id[0] ? reply->request_id : "-");
			} else {
				tdc_agent_say(ev, 0, "broker %s:%u: %s: %s", b->host, b->port,
				      result_name(r), tdc_error_format(&e, msg, sizeof(msg)));
			}
			if (r == TDC_ATTEMPT_DENIED) {
				stopped[i] = true;
				denied = true;
			} else if (r == TDC_ATTEMPT_BAD_BROKER) {
				stopped[i] = true;
				bad = true;
			} else {
				reason |= reply->error[0] != '\0';
				live++;
				if (reply->retry_after_s)
					not_before[i] = clk->now_ms(clk->arg) +
							(int64_t)reply->retry_after_s * 1000;
			}
		}
		if (live == 0)
			goto over;
		int64_t delay = tdc_backoff_delay(c->backoff_initial_ms, c->backoff_max_ms, round,
						  clk->random(clk->arg));
		int64_t now = clk->now_ms(clk->arg);
		/* every broker still worth trying asked us to wait: until the first may be asked */
		int64_t first = INT64_MAX;
		for (size_t i = 0; i < n; i++)
			if (!stopped[i] && not_before[i] < first)
				first = not_before[i];
		if (first != INT64_MAX && first - now > delay)
			delay = first - now;
		if (now + delay >= deadline)
			goto over;
		tdc_agent_say(ev, 1, "retrying in %lld ms", (long long)delay);
		clk->sleep_ms(clk->arg, delay);
	}
over:
	tdc_agent_reply_free(reply);
	snprintf(reply->error, sizeof(reply->error), "%s", last);
	if (denied || reason)
		return TDC_AGENT_EXIT_DENIED;
	if (bad)
		return TDC_AGENT_EXIT_BAD_BROKER;
	return TDC_AGENT_EXIT_NO_NETWORK;
}
