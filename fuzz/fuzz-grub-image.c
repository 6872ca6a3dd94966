/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: GRUB EFI images (module area, memdisk tar) and the GRUB script their
 * embedded grub.cfg holds must never crash, leak or read out of bounds: the image parser, the
 * memdisk lookup, and the predictor over a disk that has no partitions. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/measure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned no_uuid(void *arg, const char *uuid)
{
	(void)arg;
	(void)uuid;
	return 0;
}

static int no_file(void *arg, unsigned part, const char *path, uint8_t **buf, size_t *len,
		   struct tdc_error *e)
{
	(void)arg;
	(void)part;
	(void)buf;
	(void)len;
	return TDC_FAILF(e, TDC_E_NOT_FOUND, "no such file", "%s", path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct tdc_grub_disk disk = { NULL, no_uuid, no_file };
	struct tdc_grub_image *g = malloc(sizeof(*g));
	struct tdc_prediction *p = calloc(1, sizeof(*p));
	struct tdc_grub_boot boot;
	struct tdc_rd cfg;
	if (!g || !p)
		abort();
	if (tdc_grub_image_parse(data, size, g, NULL) == 0) {
		if (g->has_memdisk && (tdc_rd_len(&g->memdisk) > size ||
				       tdc_rd_offset(&g->memdisk) > size - tdc_rd_len(&g->memdisk)))
			abort(); /* the memdisk is a view into the image */
		if (tdc_grub_memdisk_file(g, "boot/grub/grub.cfg", &cfg, NULL) == 0 &&
		    tdc_rd_len(&cfg) > tdc_rd_len(&g->memdisk))
			abort();
		for (int measure = 0; measure < 2; measure++) {
			memset(p, 0, sizeof(*p));
			if (tdc_grub_predict(g, &disk, measure, p, &boot, NULL) == 0) {
				if (p->n > TDC_PRED_MAX_EVENTS || (!measure && p->n))
					abort();
				for (size_t i = 0; i < p->n; i++)
					if (p->ev[i].rtmr != 2 || !p->ev[i].known ||
					    !memchr(p->ev[i].what, 0, sizeof(p->ev[i].what)))
						abort();
				if (boot.kernel && !boot.kernel_path[0])
					abort();
			}
			tdc_grub_boot_free(&boot);
		}
	}
	free(p);
	free(g);
	return 0;
}
