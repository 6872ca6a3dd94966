/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest step without root: a short preparation boot of the image itself under QEMU
 * (docs/IMAGE-NOTES.md section 11). The host stages the changed files into a payload disk;
 * the guest's own kernel boots with init=/tdcrypt-prep (guest/prep/tdcrypt-prep), installs them,
 * runs the guest's initramfs generator and reports on the serial console.
 *
 * Everything the VM says is guest-controlled: the serial log is read bounded and parsed here
 * into printable-only messages; it decides success or failure of the step, never anything the
 * policy rests on (the reference values are computed from the final image's bytes).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tdcrypt/error.h"

/* Serial line prefixes the prep script prints. */
#define TDC_PREP_STEP "TDCRYPT-PREP-STEP "
#define TDC_PREP_OK "TDCRYPT-PREP-OK "
#define TDC_PREP_FAIL "TDCRYPT-PREP-FAIL "

struct tdc_prep_status {
	unsigned step, steps;        /* last "STEP n/N name" seen (0 if none) */
	char step_name[64];
	bool ok;                     /* "OK count=N" seen first */
	bool failed;                 /* "FAIL code text" seen first */
	unsigned count;              /* OK: initramfs images regenerated and checked */
	char fail_code[32];
	char fail_text[256];
};

/* Scans a serial log: STEP lines update the step, the first OK or FAIL line ends it (later
 * lines are ignored). Bytes outside printable ASCII in names and texts become '?'. */
void tdc_prep_scan(const uint8_t *log, size_t len, struct tdc_prep_status *st);

/* One payload manifest line "file MODE PATH\n" (octal mode <= 07777, absolute path of
 * [A-Za-z0-9._+@/-] without "..", what the prep script's `read` can take as is). */
int tdc_prep_manifest_file(char *dst, size_t cap, mode_t mode, const char *path,
			   struct tdc_error *e) TDC_MUST_USE;

struct build;
/* The guest step in the preparation VM (no mount, no chroot, no loop device on the host). */
int tdc_build_guest_vm(struct build *b, struct tdc_error *e) TDC_MUST_USE;
