/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The events of a whole boot, RTMR by RTMR, in the order they are extended
 * (docs/MEASUREMENT.md has the sources):
 *
 *   RTMR0  firmware configuration: TD HOB, CFV, Secure Boot variables, separator, ACPI
 *          tables, boot variables. Most depend on the VM shape and QEMU: listed, not guessed.
 *   RTMR1  UEFI: "Calling EFI Application from Boot Option", separator, the disk's GPT, the
 *          loader (Authenticode), "Exit Boot Services" x2.
 *          direct: the kernel as QEMU passes it (Authenticode), "Calling...", separator,
 *          "Exit Boot Services" x2.
 *   RTMR2  UEFI: what GRUB measures (grub.c). direct: the EFI stub's LoadOptions and initrd.
 *   RTMR3  nothing before the agent: zero.
 *
 * The firmware layout is edk2-stable202411..202502 TDVF (one separator in RTMR0, one in
 * RTMR1), which OVMF with a vTPM matches once the simulator maps its PCRs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tdcrypt/measure.h"

#define RTMR0 0u
#define RTMR1 1u
#define RTMR2 2u
#define MAX_LOAD_OPTIONS 8192u

const char *tdc_boot_path_name(enum tdc_boot_path b)
{
	return b == TDC_BOOT_DIRECT ? "direct" : "uefi";
}

const char *tdc_measure_target_name(enum tdc_measure_target t)
{
	return t == TDC_TARGET_SIM ? "sim" : "td";
}

void tdc_reference_free(struct tdc_reference *r)
{
	if (!r)
		return;
	tdc_grub_boot_free(&r->boot);
}

static int unknown(struct tdc_prediction *p, unsigned rtmr, uint32_t type, const char *what,
		   const char *why, struct tdc_error *e)
{
	return tdc_pred_add_unknown(p, rtmr, type, TDC_ROLE_FIRMWARE, what, why, e);
}

/* RTMR0, listed for the operator; the firmware-only events are predicted. */
static int rtmr0(const struct tdc_boot_inputs *in, struct tdc_reference *r, struct tdc_error *e)
{
	struct tdc_prediction *p = &r->pred;
	static const char *const sb_vars[] = { "SecureBoot", "PK", "KEK", "db", "dbx" };
	if (in->target == TDC_TARGET_TD) {
		TDC_GUARD(unknown(p, RTMR0, TDC_EV_EFI_HANDOFF_TABLES2, "TdxTable: the TD HOB",
				  "QEMU builds it from the memory size and layout", e));
		bool cfv = false;
		for (size_t i = 0; i < r->tdvf.n && !cfv; i++) {
			const struct tdc_tdvf_section *s = &r->tdvf.s[i];
			if (s->type != TDC_TDVF_CFV)
				continue;
			struct tdc_rd all, sec;
			tdc_rd_init(&all, in->fw, in->fw_len);
			TDC_GUARD(tdc_rd_skip(&all, s->data_offset, "CFV", e));
			TDC_GUARD(tdc_rd_sub(&all, s->raw_size, &sec, "CFV", e));
			TDC_GUARD(tdc_pred_add(p, RTMR0, TDC_EV_EFI_PLATFORM_FIRMWARE_BLOB2,
					       TDC_ROLE_FIRMWARE, NULL, tdc_rd_ptr(&sec),
					       tdc_rd_len(&sec), "CFV: the firmware's variable store", e));
			cfv = true;
		}
	}
	for (size_t i = 0; i < sizeof(sb_vars) / sizeof(sb_vars[0]); i++) {
		char what[64];
		snprintf(what, sizeof(what), "Secure Boot variable %s", sb_vars[i]);
		TDC_GUARD(unknown(p, RTMR0, TDC_EV_EFI_VARIABLE_DRIVER_CONFIG, what,
				  "the variables in the firmware's variable store", e));
	}
	TDC_GUARD(tdc_pred_separator(p, RTMR0, e));
	if (in->target == TDC_TARGET_TD)
		TDC_GUARD(unknown(p, RTMR0, TDC_EV_PLATFORM_CONFIG_FLAGS, "ACPI DATA (several)",
				  "QEMU's ACPI tables: QEMU version, CPUs, memory, devices", e));
	TDC_GUARD(unknown(p, RTMR0, TDC_EV_EFI_VARIABLE_BOOT, "BootOrder and Boot#### (several)",
			  "the boot options the firmware creates for the VM's devices", e));
	tdc_pred_stop(p, RTMR0, "depends on the VM shape and the host's QEMU (TD HOB, ACPI tables, "
			  "boot options); see docs/MEASUREMENT.md");
	return 0;
}

/* UTF-16LE of a Latin-1 string (as OVMF widens the fw_cfg command line), NUL included. */
static size_t widen(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (; *s && n + 4 <= cap; s++) {
		out[n++] = (uint8_t)*s;
		out[n++] = 0;
	}
	out[n++] = 0;
	out[n++] = 0;
	return n;
}

/* QEMU -kernel: RTMR1 (the kernel), RTMR2 (what the EFI stub measures). */
static int direct(const struct tdc_boot_inputs *in, struct tdc_reference *r, struct tdc_error *e)
{
	struct tdc_prediction *p = &r->pred;
	uint8_t digest[TDC_SHA384_LEN];
	uint8_t *patched = NULL;
	const uint8_t *k = in->kernel;
	bool cc = in->target == TDC_TARGET_TD;

	TDC_GUARD(tdc_bzimage_parse(in->kernel, in->kernel_len, &r->kernel, e));
	if (!r->kernel.efi_stub) {
		tdc_pred_note(p, "the kernel has no EFI stub: the firmware boots it without "
			      "measuring it (never use such a kernel on a TD)");
		tdc_pred_stop(p, RTMR1, "a kernel without an EFI stub is not measured");
		tdc_pred_stop(p, RTMR2, "a kernel without an EFI stub measures nothing");
		return 0;
	}
	if (tdc_qemu_patches_kernel(&in->qemu, in->ovmf_named_blobs)) {
		struct tdc_qemu_boot q = in->qemu;
		q.has_initrd = in->initrd != NULL;
		q.initrd_size = in->initrd_len;
		q.cmdline = in->cmdline;
		TDC_GUARD(tdc_qemu_patch_kernel(in->kernel, in->kernel_len, &q, &patched, e));
		k = patched;
	}
	int rc = tdc_pe_authenticode(k, in->kernel_len, digest, e);
	free(patched);
	TDC_GUARD(rc);
	char what[TDC_PRED_WHAT];
	snprintf(what, sizeof(what), "kernel %s (Authenticode%s)", r->kernel.version,
		 k == in->kernel ? "" : ", as QEMU patches it");
	TDC_GUARD(tdc_pred_add(p, RTMR1, TDC_EV_EFI_BOOT_SERVICES_APPLICATION, TDC_ROLE_KERNEL,
			       digest, NULL, 0, what, e));
	r->kernel_measured = true;
	TDC_GUARD(tdc_pred_action(p, RTMR1, TDC_ACTION_CALLING_EFI_APP, e));
	TDC_GUARD(tdc_pred_separator(p, RTMR1, e));
	TDC_GUARD(tdc_pred_action(p, RTMR1, TDC_ACTION_EBS_INVOCATION, e));
	TDC_GUARD(tdc_pred_action(p, RTMR1, TDC_ACTION_EBS_SUCCESS, e));

	/* The EFI stub: LoadOptions (Linux >= 6.1), then the LoadFile2 initrd (>= 5.17); into
	 * RTMRs only through TCG2 (simulator) or, from Linux 6.9, the CC protocol. */
	unsigned v = r->kernel.major * 100 + r->kernel.minor;
	if (r->kernel.major == 0) {
		tdc_pred_stop(p, RTMR2, "unknown kernel version: what its EFI stub measures is "
				  "not known");
		return 0;
	}
	if (cc && v < 609) {
		tdc_pred_note(p, "Linux %u.%u's EFI stub measures the command line and initrd only "
			      "into a TPM (the CC protocol needs Linux >= 6.9): on a TD they are "
			      "not measured", r->kernel.major, r->kernel.minor);
		return 0;
	}
	char opts[MAX_LOAD_OPTIONS];
	snprintf(opts, sizeof(opts), "%s%s", in->cmdline ? in->cmdline : "",
		 in->initrd ? " initrd=initrd" : "");
	if (v >= 601 && *opts) {
		/* the tagged event's digest covers the UTF-16 options, not the tag */
		size_t cap = 2 * MAX_LOAD_OPTIONS + 2;
		uint8_t *buf = malloc(cap);
		if (!buf)
			return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
		size_t n = widen(opts, buf, cap);
		snprintf(what, sizeof(what), "LoadOptions: %.170s", opts);
		rc = tdc_pred_add(p, RTMR2, TDC_EV_EVENT_TAG, TDC_ROLE_CMDLINE, NULL, buf, n, what, e);
		free(buf);
		TDC_GUARD(rc);
		r->cmdline_measured = true;
	}
	if (v >= 517 && in->initrd && in->initrd_len) {
		TDC_GUARD(tdc_pred_add(p, RTMR2, TDC_EV_EVENT_TAG, TDC_ROLE_INITRD, NULL, in->initrd,
				       in->initrd_len, "Linux initrd (LoadFile2)", e));
		r->initrd_measured = true;
	}
	return 0;
}

/* The firmware boots the disk's EFI loader; GRUB takes over. */
static int uefi(const struct tdc_boot_inputs *in, struct tdc_reference *r, struct tdc_error *e)
{
	struct tdc_prediction *p = &r->pred;
	uint8_t digest[TDC_SHA384_LEN];
	char what[TDC_PRED_WHAT];

	TDC_GUARD(tdc_pred_action(p, RTMR1, TDC_ACTION_CALLING_EFI_APP, e));
	TDC_GUARD(tdc_pred_separator(p, RTMR1, e));
	TDC_GUARD(tdc_pred_gpt(p, RTMR1, in->disk_head, in->disk_head_len, e));
	TDC_GUARD(tdc_pe_authenticode(in->loader, in->loader_len, digest, e));
	snprintf(what, sizeof(what), "%s (Authenticode)",
		 in->loader_path ? in->loader_path : "the EFI boot loader");
	TDC_GUARD(tdc_pred_add(p, RTMR1, TDC_EV_EFI_BOOT_SERVICES_APPLICATION, TDC_ROLE_BOOT_APP,
			       digest, NULL, 0, what, e));

	struct tdc_grub_image *g = &r->grub;
	TDC_GUARD(tdc_grub_image_parse(in->loader, in->loader_len, g, e));
	if (g->major > 2 || (g->major == 2 && g->minor >= 12)) {
		/* the generic EFI loader: LoadImage of the kernel, LoadFile2 initrd */
		tdc_pred_stop(p, RTMR1, "GRUB >= 2.12 starts the kernel with LoadImage (not "
				  "modelled yet)");
		tdc_pred_stop(p, RTMR2, "GRUB >= 2.12 is not modelled yet");
		return 0;
	}
	bool measures = g->tpm_builtin && (in->target == TDC_TARGET_SIM || g->cc_capable);
	if (!g->tpm_builtin)
		tdc_pred_note(p, "GRUB %s has no tpm module built in: it measures nothing (the "
			      "kernel, initrd and command line are not measured)",
			      g->version[0] ? g->version : "(unknown version)");
	else if (!measures)
		tdc_pred_note(p, "GRUB %s measures only into a TPM (no TDX CC measurement support): "
			      "on a TD the kernel, initrd and command line it loads are not "
			      "measured; use GRUB >= 2.14 or boot directly with Linux >= 6.9",
			      g->version[0] ? g->version : "(unknown version)");
	size_t before = p->n;
	TDC_GUARD(tdc_grub_predict(g, in->grub_disk, measures, p, &r->boot, e));
	if (!p->truncated[RTMR2] && r->boot.kernel)
		TDC_GUARD(tdc_bzimage_parse(r->boot.kernel, r->boot.kernel_len, &r->kernel, e));
	for (size_t i = before; i < p->n; i++) {
		r->kernel_measured |= p->ev[i].role == TDC_ROLE_KERNEL;
		r->initrd_measured |= p->ev[i].role == TDC_ROLE_INITRD;
		r->cmdline_measured |= p->ev[i].role == TDC_ROLE_CMDLINE;
	}
	/* Debian's GRUB 2.06 starts Linux itself (legacy or handover): no firmware or EFI-stub
	 * measurement of the kernel; then whoever exits boot services. */
	TDC_GUARD(tdc_pred_action(p, RTMR1, TDC_ACTION_EBS_INVOCATION, e));
	TDC_GUARD(tdc_pred_action(p, RTMR1, TDC_ACTION_EBS_SUCCESS, e));
	if (in->target == TDC_TARGET_SIM && !strcmp(r->boot.loader, "linux"))
		tdc_pred_note(p, "GRUB's 'linux' command (legacy boot) skips the kernel's EFI "
			      "stub, so Linux gets no event log: the simulator needs 'linuxefi'");
	return 0;
}

int tdc_predict_boot(const struct tdc_boot_inputs *in, struct tdc_reference *r,
		     struct tdc_error *e)
{
	memset(r, 0, sizeof(*r));
	TDC_GUARD(tdc_tdvf_parse(in->fw, in->fw_len, &r->tdvf, e));
	TDC_GUARD(tdc_tdvf_mrtd(in->fw, in->fw_len, &r->tdvf, in->mrtd_order, r->mrtd, e));
	TDC_GUARD(rtmr0(in, r, e));
	if (in->path == TDC_BOOT_DIRECT) {
		if (!in->kernel)
			return TDC_FAIL(e, TDC_E_USAGE, "direct boot needs a kernel");
		TDC_GUARD(direct(in, r, e));
	} else {
		if (!in->disk_head || !in->loader || !in->grub_disk)
			return TDC_FAIL(e, TDC_E_USAGE, "UEFI boot needs the disk and its loader");
		TDC_GUARD(uefi(in, r, e));
	}
	return tdc_pred_finish(&r->pred, e);
}
