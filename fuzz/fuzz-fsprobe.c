/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: probing a hostile partition's superblocks must never crash or read out of
 * bounds, and a recognised filesystem never claims more than its partition. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image/fsprobe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fsprobe", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	/* superblocks live in the first 128 KiB (btrfs: 64 KiB + 4 KiB): the input is placed
	 * there, the rest of a 1 MiB partition is a hole */
	if (ftruncate(fd, 1 << 20) < 0 || (size && pwrite(fd, data, size > (1 << 20) ? 1 << 20 : size,
						       0) < 0))
		abort();
	struct tdc_error e;
	struct tdc_image_fs_probe pr;
	tdc_error_clear(&e);
	int r = tdc_image_fs_probe(fd, 0, 1 << 20, &pr, &e);
	if (r != 0 && (e.code != r || !e.reason))
		abort();
	if (r == 0 && pr.type != TDC_FS_UNKNOWN && pr.size > (1u << 20))
		abort();
	close(fd);
	return 0;
}
