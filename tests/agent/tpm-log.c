/* SPDX-License-Identifier: Apache-2.0 */
/* Writes a small vTPM event log (as OVMF + GRUB record one) to argv[1]: the boot that the
 * simulator's quote replays in the shell tests (the clevis pin). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"

int main(int argc, char **argv)
{
	static const struct {
		uint32_t pcr, type;
		const char *text;
	} evs[] = {
		{ 7, TDC_EV_SEPARATOR, "sep" }, { 4, TDC_EV_SEPARATOR, "sep" },
		{ 8, TDC_EV_IPL, "linux /vmlinuz ro" }, { 9, TDC_EV_IPL, "/initrd.img" },
	};
	struct tdc_evlog_writer *w;
	uint8_t *buf, d[48];
	size_t len;
	unsigned dl;
	struct tdc_error e;
	tdc_error_clear(&e);
	if (argc != 2 || tdc_evlog_writer_new(&w, &e) < 0)
		return 2;
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		EVP_Digest(evs[i].text, strlen(evs[i].text), d, &dl, EVP_sha384(), NULL);
		if (tdc_evlog_writer_add(w, evs[i].pcr, evs[i].type, d, evs[i].text,
					 strlen(evs[i].text), &e) < 0) {
			tdc_evlog_writer_free(w);
			return 1;
		}
	}
	if (tdc_evlog_writer_finish(w, &buf, &len, &e) < 0)
		return 1;
	FILE *f = fopen(argv[1], "wb");
	int ok = f && fwrite(buf, 1, len, f) == len;
	if (f)
		ok = fclose(f) == 0 && ok;
	free(buf);
	return ok ? 0 : 1;
}
