/* SPDX-License-Identifier: Apache-2.0 */
/* Test driver for tests/e2e/proto-encrypt-boot.sh until the CLI exists:
 *   [LUKS_UUID=...] encrypt-tool enc SRC_FS OUT_PART SECRET_FILE
 * Prints a JSON summary (no key material) on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "image/encrypt.h"
#include "util/util.h"

int main(int argc, char **argv)
{
	struct tdc_image_encrypt_opts o = { 0 };
	struct tdc_image_encrypt_result r;
	struct tdc_error e;
	struct timespec t0, t1;
	uint8_t *secret = NULL;
	size_t len = 0;
	char h1[65], h2[65], msg[512];
	int rc;

	if (argc != 5 || strcmp(argv[1], "enc") != 0) {
		fprintf(stderr, "usage: encrypt-tool enc SRC_FS OUT_PART SECRET_FILE\n");
		return 2;
	}
	tdc_error_clear(&e);
	if (tdc_file_read(argv[4], TDC_IMAGE_MAX_SECRET, &secret, &len, &e) < 0) {
		fprintf(stderr, "encrypt-tool: %s\n", tdc_error_format(&e, msg, sizeof(msg)));
		return 1;
	}
	o.src = argv[2];
	o.out = argv[3];
	o.secret = secret;
	o.secret_len = len;
	o.uuid = getenv("LUKS_UUID");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = tdc_image_encrypt_ext4(&o, &r, &e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	OPENSSL_cleanse(secret, len);
	free(secret);
	if (rc < 0) {
		fprintf(stderr, "encrypt-tool: %s\n", tdc_error_format(&e, msg, sizeof(msg)));
		return 1;
	}
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("{\"uuid\":\"%s\",\"fs_blocks\":%llu,\"used_blocks\":%llu,\"out_size\":%llu,"
	       "\"header_sha256\":\"%s\",\"vk_sha256\":\"%s\",\"seconds\":%.3f,\"mib_per_s\":%.0f}\n",
	       r.uuid, (unsigned long long)r.fs_blocks, (unsigned long long)r.used_blocks,
	       (unsigned long long)r.out_size, tdc_hex_encode(r.header_sha256, 32, h1),
	       tdc_hex_encode(r.vk_sha256, 32, h2), s, (double)r.used_blocks * 4096.0 / 1048576.0 / s);
	return 0;
}
