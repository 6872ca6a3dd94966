/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quote provider: Linux configfs-tsm (tdx-quote-verification.md A5). The
 * kernel bumps `generation` on each inblob write; if it moved by more than
 * one around our outblob read, another writer raced us and the outblob may
 * be theirs, so we retry.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-int.h"

#define DEF_ATTEMPTS 4u

bool tdc_tsm_available(const char *root)
{
	struct stat st;
	return stat(root ? root : TDC_TSM_DEFAULT_ROOT, &st) == 0 && S_ISDIR(st.st_mode);
}

static int attr_path(char *out, size_t cap, const char *entry, const char *attr,
		     struct tdc_error *e)
{
	if ((size_t)snprintf(out, cap, "%s/%s", entry, attr) >= cap)
		return TDC_FAIL(e, TDC_E_USAGE, "configfs path too long");
	return 0;
}

/* A short text attribute without its trailing newline. */
static int read_attr(const char *entry, const char *attr, char *out, size_t cap,
		     struct tdc_error *e)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	TDC_GUARD(attr_path(path, sizeof(path), entry, attr, e));
	TDC_GUARD(tdc_agent_read_small(path, TDC_MAX_TSM_ATTR, &buf, &len, e));
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\0'))
		len--;
	if (len >= cap || memchr(buf, '\0', len)) {
		free(buf);
		return TDC_FAILF(e, TDC_E_FORMAT, "bad configfs-tsm attribute", "%s", attr);
	}
	memcpy(out, buf, len);
	out[len] = '\0';
	free(buf);
	return 0;
}

static int read_generation(const char *entry, uint64_t *gen, struct tdc_error *e)
{
	char s[32];
	TDC_GUARD(read_attr(entry, "generation", s, sizeof(s), e));
	uint64_t v = 0;
	if (!s[0] || strlen(s) > 19)
		return TDC_FAILF(e, TDC_E_FORMAT, "bad configfs-tsm generation", "'%s'", s);
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return TDC_FAILF(e, TDC_E_FORMAT, "bad configfs-tsm generation", "'%s'", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*gen = v;
	return 0;
}

static int write_inblob(const char *entry, const uint8_t rd[64], struct tdc_error *e)
{
	char path[4096];
	TDC_GUARD(attr_path(path, sizeof(path), entry, "inblob", e));
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot open inblob", "%s: %s", path,
				 strerror(errno));
	ssize_t n;
	do
		n = write(fd, rd, 64);
	while (n < 0 && errno == EINTR);
	int err = errno;
	close(fd);
	if (n != 64)
		return TDC_FAILF(e, TDC_E_IO, "cannot write inblob", "%s: %s", path,
				 n < 0 ? strerror(err) : "short write");
	return 0;
}

static int one_try(const struct tdc_tsm_opts *o, const char *entry, const uint8_t rd[64],
		   unsigned attempt, uint8_t **quote, size_t *len, bool *raced, struct tdc_error *e)
{
	char path[4096];
	uint64_t g1, g2;

	*raced = false;
	TDC_GUARD(read_generation(entry, &g1, e));
	TDC_GUARD(write_inblob(entry, rd, e));
	if (o->hook)
		o->hook(o->hook_arg, TDC_TSM_INBLOB, entry, attempt);
	TDC_GUARD(attr_path(path, sizeof(path), entry, "outblob", e));
	TDC_GUARD(tdc_agent_read_small(path, TDC_MAX_QUOTE_SIZE, quote, len, e));
	if (o->hook)
		o->hook(o->hook_arg, TDC_TSM_OUTBLOB, entry, attempt);
	int rc = read_generation(entry, &g2, e);
	if (rc == 0 && g2 != g1 + 1) {
		*raced = true;
		rc = TDC_FAILF(e, TDC_E_IO, "configfs-tsm generation race",
			       "generation %llu -> %llu", (unsigned long long)g1,
			       (unsigned long long)g2);
	} else if (rc == 0 && *len == 0) {
		rc = TDC_FAIL(e, TDC_E_IO, "configfs-tsm returned an empty quote");
	}
	if (rc < 0) {
		free(*quote);
		*quote = NULL;
		*len = 0;
	}
	return rc;
}

int tdc_tsm_get_quote(const struct tdc_tsm_opts *o, const uint8_t report_data[64], uint8_t **quote,
		      size_t *len, struct tdc_error *e)
{
	const char *root = o && o->root ? o->root : TDC_TSM_DEFAULT_ROOT;
	unsigned max = o && o->max_attempts ? o->max_attempts : DEF_ATTEMPTS;
	struct tdc_tsm_opts none = {0};
	char entry[4096], name[64], provider[32];
	int rc;

	if (!o)
		o = &none;
	*quote = NULL;
	*len = 0;
	if (o->name)
		snprintf(name, sizeof(name), "%s", o->name);
	else
		snprintf(name, sizeof(name), "tdcrypt-%ld", (long)getpid());
	if ((size_t)snprintf(entry, sizeof(entry), "%s/%s", root, name) >= sizeof(entry))
		return TDC_FAIL(e, TDC_E_USAGE, "configfs path too long");
	bool created = mkdir(entry, 0700) == 0;
	if (!created && errno != EEXIST)
		return TDC_FAILF(e, TDC_E_IO, "cannot create configfs-tsm report entry", "%s: %s",
				 entry, strerror(errno));
	if (o->hook)
		o->hook(o->hook_arg, TDC_TSM_MKDIR, entry, 0);

	rc = read_attr(entry, "provider", provider, sizeof(provider), e);
	if (rc == 0 && strcmp(provider, "tdx_guest") != 0)
		rc = TDC_FAILF(e, TDC_E_UNSUPPORTED, "configfs-tsm provider is not tdx_guest",
			       "'%s'", provider);
	for (unsigned i = 0; rc == 0 && i < max; i++) {
		struct tdc_error tmp = {0};
		bool raced;
		rc = one_try(o, entry, report_data, i, quote, len, &raced, &tmp);
		if (rc < 0 && raced && i + 1 < max) {
			rc = 0; /* try again; the last race is reported */
			continue;
		}
		if (rc < 0 && e && !e->code)
			*e = tmp;
		break;
	}
	if (created)
		(void)rmdir(entry);
	return rc;
}
