/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reference values from an image: the inputs of its boot read out of the disk (GPT, the ESP's
 * EFI loader, the grub.cfg and files on the clear /boot), then lib/measure predicts. The
 * launcher's direct boot takes its kernel, initrd and command line from here too, so that what
 * is predicted is what is booted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tdcrypt/image.h"

void tdc_direct_boot_free(struct tdc_direct_boot *b)
{
	if (!b)
		return;
	free(b->kernel);
	free(b->initrd);
	memset(b, 0, sizeof(*b));
}

/* Runs the disk's GRUB config (measuring or not) into r. */
static int run_grub(struct tdc_bootdisk *d, const struct tdc_image_ref_opts *o, uint8_t **loader,
		    size_t *loader_len, struct tdc_reference *r, struct tdc_error *e)
{
	struct tdc_grub_disk gd;
	if (!d->esp)
		return TDC_FAIL(e, TDC_E_UNSUPPORTED, "the disk has no ESP (EFI system partition)");
	TDC_GUARD(tdc_bootdisk_read(d, d->esp, TDC_IMAGE_EFI_LOADER, loader, loader_len, e));
	tdc_bootdisk_grub(d, &gd);
	if (!o) {
		/* only what GRUB boots */
		int rc = tdc_grub_image_parse(*loader, *loader_len, &r->grub, e);
		if (rc == 0)
			rc = tdc_grub_predict(&r->grub, &gd, false, &r->pred, &r->boot, e);
		return rc;
	}
	struct tdc_boot_inputs in = {
		.path = TDC_BOOT_UEFI,
		.target = o->target,
		.fw = o->fw,
		.fw_len = o->fw_len,
		.mrtd_order = o->mrtd_order,
		.disk_head = d->head,
		.disk_head_len = d->head_len,
		.loader = *loader,
		.loader_len = *loader_len,
		.loader_path = TDC_IMAGE_EFI_LOADER,
		.grub_disk = &gd,
	};
	return tdc_predict_boot(&in, r, e);
}

int tdc_image_direct_boot(const char *image, struct tdc_direct_boot *b, struct tdc_error *e)
{
	struct tdc_bootdisk d;
	struct tdc_reference *r = calloc(1, sizeof(*r));
	uint8_t *loader = NULL;
	size_t loader_len = 0;
	int rc;

	memset(b, 0, sizeof(*b));
	if (!r)
		return TDC_FAIL(e, TDC_E_NOMEM, "out of memory");
	if ((rc = tdc_bootdisk_open(image, &d, e)) < 0)
		goto out_r;
	rc = run_grub(&d, NULL, &loader, &loader_len, r, e);
	if (rc == 0 && !r->boot.kernel)
		rc = TDC_FAILF(e, TDC_E_UNSUPPORTED, "cannot tell what the image's GRUB boots", "%s",
			       r->pred.why[2][0] ? r->pred.why[2] : "no kernel");
	if (rc == 0) {
		const char *args = r->boot.cmdline;
		/* "BOOT_IMAGE=<path> args" -> "args" */
		if (!strncmp(args, "BOOT_IMAGE=", 11)) {
			const char *sp = strchr(args, ' ');
			args = sp ? sp + 1 : "";
		}
		snprintf(b->cmdline, sizeof(b->cmdline), "%s", args);
		snprintf(b->kernel_path, sizeof(b->kernel_path), "%s", r->boot.kernel_path);
		b->kernel = r->boot.kernel;
		b->kernel_len = r->boot.kernel_len;
		b->initrd = r->boot.initrd;
		b->initrd_len = r->boot.initrd_len;
		r->boot.kernel = r->boot.initrd = NULL;
	}
	free(loader);
	tdc_bootdisk_close(&d);
out_r:
	tdc_reference_free(r);
	free(r);
	return rc;
}

int tdc_image_reference(const struct tdc_image_ref_opts *o, struct tdc_reference *r,
			struct tdc_error *e)
{
	struct tdc_bootdisk d;
	uint8_t *loader = NULL;
	size_t loader_len = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if (o->path == TDC_BOOT_DIRECT) {
		struct tdc_direct_boot b;
		TDC_GUARD(tdc_image_direct_boot(o->image, &b, e));
		struct tdc_boot_inputs in = {
			.path = TDC_BOOT_DIRECT,
			.target = o->target,
			.fw = o->fw,
			.fw_len = o->fw_len,
			.mrtd_order = o->mrtd_order,
			.kernel = b.kernel,
			.kernel_len = b.kernel_len,
			.initrd = b.initrd,
			.initrd_len = b.initrd_len,
			.cmdline = b.cmdline,
			.qemu = o->qemu,
			.ovmf_named_blobs = o->ovmf_named_blobs,
		};
		rc = tdc_predict_boot(&in, r, e);
		tdc_direct_boot_free(&b);
		return rc;
	}
	TDC_GUARD(tdc_bootdisk_open(o->image, &d, e));
	rc = run_grub(&d, o, &loader, &loader_len, r, e);
	/* r->grub points into the loader: what callers need of it is copied already */
	r->grub.has_memdisk = false;
	memset(&r->grub.memdisk, 0, sizeof(r->grub.memdisk));
	free(loader);
	tdc_bootdisk_close(&d);
	return rc;
}
