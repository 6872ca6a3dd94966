/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `tdcrypt image encrypt`: turns a GPT guest disk (qcow2 or raw; ESP + ext4 root holding /boot)
 * into ESP (copied as is) + a clear /boot + a LUKS2 root whose key only the broker releases.
 * See docs/IMAGE-NOTES.md for the layout and README.md for the privileges it needs.
 *
 * Nothing here prints; progress goes through a callback. The disk secret is the caller's (random,
 * >= 32 bytes); the library never writes it anywhere but into the keyslot.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

#define TDC_IMAGE_DEFAULT_LUKS_NAME "tdcrypt_root"
#define TDC_IMAGE_DEFAULT_BOOT_MIB 512u
#define TDC_IMAGE_MAX_BROKERS 8u
#define TDC_IMAGE_MAX_PINS 8u

struct tdc_image_build_result;

/* Where the guest's initramfs generator runs. */
enum tdc_image_guest_step {
	TDC_GUEST_STEP_AUTO = 0,  /* chroot as root (faster), VM otherwise */
	TDC_GUEST_STEP_CHROOT,    /* loop mount + chroot on the host: needs root */
	TDC_GUEST_STEP_VM,        /* preparation boot of the image under QEMU: no root */
};
/* What AUTO means for this effective user. */
enum tdc_image_guest_step tdc_image_guest_step_pick(enum tdc_image_guest_step req,
						    unsigned euid);
const char *tdc_image_guest_step_name(enum tdc_image_guest_step s);
/* Default limit on the preparation VM (TCG runs the generator ~26x slower than native). */
#define TDC_IMAGE_DEFAULT_PREP_TIMEOUT_S 3600u

struct tdc_image_build_opts {
	const char *in;
	const char *out;               /* must not exist; created by an atomic rename at the end */
	const char *out_format;        /* "qcow2", "raw", or NULL: as the input */
	const uint8_t *secret;         /* keyslot 0 secret = the key the broker releases */
	size_t secret_len;
	/* agent config (agent/README.md) */
	const char *secret_id;
	const char *const *brokers;    /* "host:port" */
	size_t n_brokers;
	const char *const *pins;       /* broker SPKI SHA-256, 64 hex */
	size_t n_pins;
	uint32_t total_timeout_s;      /* 0: the agent's default */
	const char *sim_dir;           /* TESTS ONLY: provider "sim" with this `tdcrypt sim init` dir */
	const char *agent_path;        /* tdcrypt-agent binary to install in the guest */
	const char *guest_dir;         /* the project's guest/ directory (initramfs integration) */
	const char *luks_name;         /* NULL: TDC_IMAGE_DEFAULT_LUKS_NAME */
	const char *extra_cmdline;     /* appended to the kernel command lines in grub.cfg; or NULL */
	uint32_t boot_mib;             /* size of the new /boot; 0: TDC_IMAGE_DEFAULT_BOOT_MIB */
	/*
	 * Layout only (tests, no root needed): the root is encrypted unchanged, no agent, no
	 * config, no initramfs; /boot is copied with debugfs rdump (ownership of the caller).
	 */
	bool no_guest;
	enum tdc_image_guest_step guest_step;
	uint32_t prep_timeout_s;       /* VM step: 0 = TDC_IMAGE_DEFAULT_PREP_TIMEOUT_S */
	/*
	 * Called at each stage start (done = total = 0), with byte progress during the long
	 * stages (convert, encrypt, qcow2: done <= total, total > 0), and as a heartbeat about
	 * every 200 ms while an external step runs (the guest's initramfs generator: 0, 0 again,
	 * same stage). A nonzero return stops the build: TDC_E_CANCELLED, no OUT, no temp dir,
	 * nothing left mounted. Stage names are fixed strings; a new stage is a new name.
	 */
	int (*progress)(void *arg, const char *stage, uint64_t done, uint64_t total);
	void *progress_arg;
	/* Called when everything is built, before OUT appears; a negative return aborts the build
	 * (e.g. the key could not be registered) and leaves no OUT. */
	int (*commit)(void *arg, const struct tdc_image_build_result *r, struct tdc_error *e);
	void *commit_arg;
};

struct tdc_image_part {
	unsigned index;
	uint64_t offset, size;         /* bytes */
	char type[37], guid[37], name[37];
};

struct tdc_image_build_result {
	char in_format[16], out_format[16];
	uint64_t in_size, out_size;    /* virtual disk sizes */
	uint64_t out_allocated;        /* bytes the output file occupies */
	char distro_id[32], distro_version[32], distro_pretty[96], family[16];
	struct tdc_image_part esp, boot, root;     /* output layout */
	struct tdc_image_part in_esp, in_root;     /* where they were in the input */
	uint64_t root_fs_blocks, root_used_blocks; /* 4096-byte blocks */
	char root_fs[8];               /* "ext4", "xfs", "btrfs" */
	/* "allocated" (ext4: only the blocks in use) or "whole-partition" (every block, with
	 * encrypted_reason saying why) */
	char encrypted[16], encrypted_reason[128];
	char luks_uuid[40], luks_name[128];
	char boot_fs_uuid[37], root_fs_uuid[37];
	uint8_t header_sha256[32], vk_sha256[32];
	bool guest_modified;
	char guest_step[8];            /* "chroot", "vm", or "" (no guest step) */
	unsigned initramfs_count;      /* initramfs images regenerated and checked */
	double t_convert, t_inspect, t_guest, t_encrypt, t_assemble, t_output, t_total; /* s */
};

/* Builds opts->out; on any failure nothing is left at opts->out and the temp dir is removed. */
int tdc_image_build(const struct tdc_image_build_opts *o, struct tdc_image_build_result *r,
		    struct tdc_error *e) TDC_MUST_USE;

/* ---- reading a boot disk for reference values (bootdisk.c) ---- */

#include "tdcrypt/measure.h"

#define TDC_BOOTDISK_MAX_FS 16u

/* A disk image opened read-only for `tdcrypt measure`: its GPT, its filesystems (ext4, FAT) by
 * partition number and UUID, files read out of them. qcow2 is read through a sparse raw copy. */
struct tdc_bootdisk {
	char raw[4096];          /* the raw image read from */
	char tmpdir[2048];       /* ours to remove ("" if none) */
	uint64_t size;
	uint8_t *head;           /* PMBR, GPT header and entries (the GPT event's input) */
	size_t head_len;
	unsigned esp;            /* partition number of the ESP, 0 if none */
	size_t n_fs;
	struct {
		unsigned part;
		uint64_t offset;
		bool fat;
		char uuid[40];   /* as GRUB shows it: ext4 lower-case RFC 4122, FAT "xxxx-xxxx" */
	} fs[TDC_BOOTDISK_MAX_FS];
};

int tdc_bootdisk_open(const char *image, struct tdc_bootdisk *d, struct tdc_error *e)
	TDC_MUST_USE;
void tdc_bootdisk_close(struct tdc_bootdisk *d);
/* path of partition part (ext4: symlinks followed; FAT: through mtools); TDC_E_NOT_FOUND if
 * absent. *buf malloc'd. */
int tdc_bootdisk_read(struct tdc_bootdisk *d, unsigned part, const char *path, uint8_t **buf,
		      size_t *len, struct tdc_error *e) TDC_MUST_USE;
/* The callbacks tdc_grub_predict reads the disk with. */
void tdc_bootdisk_grub(struct tdc_bootdisk *d, struct tdc_grub_disk *g);

/* ---- reference values of an image (reference.c) ---- */

/* The EFI loader a UEFI firmware boots from a disk without boot entries (TDVF's variables
 * do not persist). */
#define TDC_IMAGE_EFI_LOADER "\\EFI\\BOOT\\BOOTX64.EFI"

/* What a direct kernel boot of an image gives QEMU: the default GRUB entry's files. */
struct tdc_direct_boot {
	uint8_t *kernel, *initrd;
	size_t kernel_len, initrd_len;
	char cmdline[4096];         /* -append: the entry's arguments (without BOOT_IMAGE) */
	char kernel_path[256];
};
void tdc_direct_boot_free(struct tdc_direct_boot *b);
/* The kernel, initrd and command line the image's GRUB would boot (its default entry). */
int tdc_image_direct_boot(const char *image, struct tdc_direct_boot *b, struct tdc_error *e)
	TDC_MUST_USE;

struct tdc_image_ref_opts {
	const char *image;             /* the disk */
	const uint8_t *fw;             /* the firmware the launcher uses */
	size_t fw_len;
	enum tdc_boot_path path;
	enum tdc_measure_target target;
	enum tdc_mrtd_order mrtd_order;
	struct tdc_qemu_boot qemu;     /* direct boot: memory and QEMU version */
	bool ovmf_named_blobs;
};
/* Predicts the measurements of booting o->image (tdc_predict_boot with the disk's GPT, EFI
 * loader and GRUB config, or with its default entry's kernel for a direct boot). */
int tdc_image_reference(const struct tdc_image_ref_opts *o, struct tdc_reference *r,
			struct tdc_error *e) TDC_MUST_USE;
