/* SPDX-License-Identifier: Apache-2.0 */
/* Internal state of tdc_image_build shared by build.c (disk plumbing) and guest.c (changes made
 * inside the mounted guest root). */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "image/distro.h"
#include "image/encrypt.h"
#include "image/fsprobe.h"
#include "image/gpt.h"
#include "image/overlay.h"
#include "tdcrypt/image.h"

#define BUILD_MAX_MOUNTS 8

struct build {
	const struct tdc_image_build_opts *o;
	struct tdc_image_build_result *r;
	const char *luks_name;
	char work[PATH_MAX];        /* OUT.tmp-XXXXXX: everything temporary lives here */
	char raw[PATH_MAX];         /* input as sparse raw (our private copy; the root is changed) */
	const char *src;            /* the raw disk read from: raw, or the input itself (direct) */
	bool direct;                /* layout-only from a raw input: no copy; IN is only read */
	struct tdc_overlay ov;      /* direct: the root's new UUID, applied while encrypting */
	char luks[PATH_MAX];        /* LUKS2 header file (full partition size, sparse) */
	char boot_img[PATH_MAX];    /* new /boot ext4 */
	char disk[PATH_MAX];        /* output raw */
	char mnt[PATH_MAX];         /* guest root mount point */
	char mounts[BUILD_MAX_MOUNTS][PATH_MAX];
	int n_mounts;
	bool mounts_stuck;          /* an unmount failed: never delete work */
	uint64_t raw_size;
	struct tdc_gpt gpt;
	const struct tdc_gpt_part *esp, *root;
	/* input's own /boot partition (the one the root's fstab mounts on /boot; copied as is,
	 * no new /boot is made) and BIOS boot partition (copied as is); NULL if absent */
	const struct tdc_gpt_part *boot_part, *bios;
	uint64_t root_off, root_len;
	struct tdc_image_fs_info fs;
	/* the root's filesystem; whole: not ext4, so the whole partition is encrypted, the guest
	 * step is refused and the root keeps its fs UUID */
	struct tdc_image_fs_probe root_probe;
	bool whole;
	struct tdc_os_release osr;
	bool dracut; /* the guest's initramfs generator is dracut (RHEL family, or a Debian
		      * without initramfs-tools), else initramfs-tools */
	struct tdc_image_luks lk;
	uint8_t root_new_uuid[16];
	char boot_uuid[37], root_uuid[37];
	const char *stage;          /* the current stage (progress heartbeats name it) */
	/* byte progress of an external tool's output file (convert, qcow2): watch_file's
	 * allocated bytes against watch_total */
	const char *watch_file;
	uint64_t watch_total;
};

/* guest.c: mount the root (and b->boot_part on its /boot), install agent/config/integration,
 * regenerate the initramfs, build boot_img from its /boot and empty /boot (not with boot_part),
 * unmount. */
int tdc_build_guest(struct build *b, struct tdc_error *e) TDC_MUST_USE;
/* guest.c: the agent, its config, the integration and the fstab/crypttab/boot config edits,
 * made in root = a staging tree of the guest (the files the edits read are copied there first);
 * with kernel_links_found (a /vmlinuz-style link in the guest) kernel-img.conf too. */
int tdc_build_guest_staged(struct build *b, int root, bool kernel_links_found,
			   struct tdc_error *e) TDC_MUST_USE;
/* Unmounts everything b mounted, in reverse order (lazily as a last resort). */
void tdc_build_unmount_all(struct build *b);
/* Stage start; TDC_E_CANCELLED if the caller's progress callback asks to stop. */
int tdc_build_stage(struct build *b, const char *stage, struct tdc_error *e) TDC_MUST_USE;
/* tdc_run_watch tick: a heartbeat of the current stage (with watch_file's progress if set);
 * nonzero when the caller asks to stop. */
int tdc_build_tick(void *b);
/* mke2fs -d SRC_DIR into b->boot_img (label boot, fs UUID = the input root's). */
int tdc_build_boot_fs(struct build *b, const char *src_dir, struct tdc_error *e) TDC_MUST_USE;
