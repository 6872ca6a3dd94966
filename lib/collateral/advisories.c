/* SPDX-License-Identifier: Apache-2.0 */
/* Advisory ID sets: the verdict reports the union over the matched levels. */
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/collateral.h"

void tdc_advisories_free(struct tdc_advisories *a)
{
	if (!a)
		return;
	free(a->id);
	a->id = NULL;
	a->n = 0;
}

static bool contains(const struct tdc_advisories *a, const char *id)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->id[i], id) == 0)
			return true;
	return false;
}

int tdc_advisories_merge(struct tdc_advisories *dst, const struct tdc_advisories *src,
			 struct tdc_error *e)
{
	if (!dst || !src)
		return TDC_FAIL(e, TDC_E_USAGE, "advisories: NULL argument");
	size_t add = 0;
	for (size_t i = 0; i < src->n; i++)
		if (!contains(dst, src->id[i]))
			add++;
	if (add == 0)
		return 0;
	/* bounded by two parsed sets, each at most TDC_MAX_ADVISORIES per level times levels */
	char(*ids)[TDC_MAX_ADVISORY_LEN + 1] = realloc(dst->id, (dst->n + add) * sizeof(*ids));
	if (!ids)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	dst->id = ids;
	for (size_t i = 0; i < src->n; i++) {
		if (contains(dst, src->id[i]))
			continue;
		/* src ids are NUL-terminated within their slot by construction */
		memcpy(dst->id[dst->n], src->id[i], sizeof(*ids));
		dst->id[dst->n][TDC_MAX_ADVISORY_LEN] = '\0';
		dst->n++;
	}
	return 0;
}
