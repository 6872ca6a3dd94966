/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the PCK certificate's SGX extension value (DER). */
#include <stddef.h>
#include <stdint.h>

#include <openssl/err.h>

#include "x509/x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tdc_pck_ext ext;
	struct tdc_error e;

	tdc_error_clear(&e);
	int rc = tdc_pck_ext_parse_der(data, size, &ext, &e);
	/* a failure must say why; success and failure leave no OpenSSL error behind */
	if ((rc == 0) != (e.code == 0) || rc > 0 || ERR_peek_error() != 0)
		__builtin_trap();
	if (rc == 0 && !(ext.sgx_type >= 0 && ext.sgx_type <= 2))
		__builtin_trap();
	return 0;
}
