/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reference values (docs/MEASUREMENT.md): what a TD will report, computed from
 * the inputs of its boot, and the CC event log that proves what it did report.
 *
 *   tdvf.c      TDVF metadata and MRTD (TDH.MEM.PAGE.ADD / TDH.MR.EXTEND replayed in SHA-384)
 *   pe.c        Authenticode digest of a PE/COFF image (what UEFI measures for LoadImage)
 *   eventlog.c  TCG2 crypto-agile event logs (CCEL, TPM), replay into RTMRs
 *   events.c    UEFI and boot-loader event encodings (EV_EFI_ACTION, GPT, ...)
 *   grub.c      the events GRUB measures for a grub.cfg (a subset GRUB runs deterministically)
 *   linux.c     QEMU's patching of a bzImage for direct kernel boot
 *   predict.c   the events of each RTMR for a boot path, and their values
 *
 * Everything here is pure: no files are opened, the clock is never read.
 * Firmware, kernels and logs are bounded and validated like any other input.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"
#include "util/rd.h"

#define TDC_SHA384_LEN 48u

/* ---- TDVF metadata and MRTD (tdvf.c) ---- */

enum tdc_tdvf_type {
	TDC_TDVF_BFV = 0,      /* boot firmware volume: code, measured into MRTD */
	TDC_TDVF_CFV = 1,      /* configuration firmware volume: UEFI variables */
	TDC_TDVF_TD_HOB = 2,   /* the TD HOB QEMU builds (measured by TDVF into RTMR0) */
	TDC_TDVF_TEMP_MEM = 3, /* temporary memory, zero */
};
#define TDC_TDVF_ATTR_MR_EXTEND 0x1u
#define TDC_TDVF_ATTR_PAGE_AUG 0x2u
#define TDC_TDVF_MAX_SECTIONS 32u
/* Firmware images are a few MiB (Debian's OVMF.fd is 2 MiB, Ubuntu's 4 MiB). */
#define TDC_TDVF_MAX_IMAGE (64u * 1024u * 1024u)

struct tdc_tdvf_section {
	uint32_t data_offset; /* in the image file */
	uint32_t raw_size;
	uint64_t gpa;         /* guest physical address */
	uint64_t mem_size;
	uint32_t type;        /* enum tdc_tdvf_type */
	uint32_t attributes;
};

struct tdc_tdvf {
	uint32_t version;
	size_t descriptor_offset; /* file offset of "TDVF" */
	size_t n;
	struct tdc_tdvf_section s[TDC_TDVF_MAX_SECTIONS];
};

const char *tdc_tdvf_type_name(uint32_t type);

/*
 * Finds and checks the TDVF metadata of a firmware image (the OVMF GUIDed table
 * at the end of the image, then the descriptor it points to). Refuses what QEMU
 * would refuse or misread: section types other than BFV/CFV/TD_HOB/TEMP_MEM,
 * unknown attribute bits, PAGE.AUG, unaligned or overlapping sections, data
 * outside the file, not exactly one TD_HOB, no BFV.
 */
int tdc_tdvf_parse(const uint8_t *img, size_t len, struct tdc_tdvf *out, struct tdc_error *e)
	TDC_MUST_USE;

enum tdc_mrtd_order {
	/* QEMU >= 9 with KVM >= 6.16 (upstream TDX): per page, PAGE.ADD then its 16 MR.EXTENDs */
	TDC_MRTD_SINGLE_PASS = 0,
	/* QEMU 8.x with the pre-upstream KVM (Canonical TDX 1.0): per section, all PAGE.ADDs,
	 * then all MR.EXTENDs */
	TDC_MRTD_TWO_PASS = 1,
};
const char *tdc_mrtd_order_name(enum tdc_mrtd_order o);

/* MRTD of a TD built from img by QEMU: every section's pages added in metadata order,
 * the content of MR.EXTEND sections extended 256 bytes at a time. */
int tdc_tdvf_mrtd(const uint8_t *img, size_t len, const struct tdc_tdvf *t,
		  enum tdc_mrtd_order order, uint8_t mrtd[TDC_SHA384_LEN], struct tdc_error *e)
	TDC_MUST_USE;

/* ---- PE/COFF Authenticode (pe.c) ---- */

/* A kernel with its EFI stub is ~10 MiB; GRUB standalone images ~10 MiB. */
#define TDC_PE_MAX_IMAGE (256u * 1024u * 1024u)

/*
 * The Authenticode SHA-384 of a PE/COFF image as edk2 computes it when it
 * measures LoadImage (MeasureBootPeCoff): the headers without the checksum and
 * the certificate-table entry, the sections in file order, then any trailing
 * data except the certificate table. Refuses what edk2 would not measure
 * (not PE, certificate table beyond the file, sections outside the file).
 */
int tdc_pe_authenticode(const uint8_t *img, size_t len, uint8_t digest[TDC_SHA384_LEN],
			struct tdc_error *e) TDC_MUST_USE;

/* ---- TCG2 crypto-agile event logs: CCEL and TPM (eventlog.c) ---- */

/* UEFI/TCG event types used here (TCG PC Client PFP spec, section 10.4.1). */
#define TDC_EV_NO_ACTION 0x3u
#define TDC_EV_SEPARATOR 0x4u
#define TDC_EV_EVENT_TAG 0x6u
#define TDC_EV_PLATFORM_CONFIG_FLAGS 0xau
#define TDC_EV_IPL 0xdu
#define TDC_EV_EFI_VARIABLE_DRIVER_CONFIG 0x80000001u
#define TDC_EV_EFI_VARIABLE_BOOT 0x80000002u
#define TDC_EV_EFI_BOOT_SERVICES_APPLICATION 0x80000003u
#define TDC_EV_EFI_GPT_EVENT 0x80000006u
#define TDC_EV_EFI_ACTION 0x80000007u
#define TDC_EV_EFI_PLATFORM_FIRMWARE_BLOB2 0x8000000au
#define TDC_EV_EFI_HANDOFF_TABLES2 0x8000000bu
#define TDC_EV_EFI_VARIABLE_AUTHORITY 0x800000e0u

/* TPM_ALG_ID values of the digests a log may carry. */
#define TDC_TPM_ALG_SHA1 0x0004u
#define TDC_TPM_ALG_SHA256 0x000bu
#define TDC_TPM_ALG_SHA384 0x000cu
#define TDC_TPM_ALG_SHA512 0x000du
#define TDC_TPM_ALG_SM3_256 0x0012u

/* Caps on a log (limits.h has the wire caps). */
#define TDC_EVLOG_MAX_EVENTS 2048u
#define TDC_EVLOG_MAX_EVENT_DATA (64u * 1024u)
#define TDC_EVLOG_MAX_ALGS 5u
#define TDC_RTMR_COUNT 4u

enum tdc_evlog_kind {
	/* a CC event log (CCEL, UEFI 2.10 section 38.4): index 1..4 = RTMR0..3; SHA-384 required */
	TDC_EVLOG_CC = 0,
	/* a TPM 2.0 event log (binary_bios_measurements): index = PCR 0..23 */
	TDC_EVLOG_TPM = 1,
};

struct tdc_event {
	uint32_t index;          /* MR index (CC) or PCR (TPM) */
	uint32_t type;
	uint8_t sha384[TDC_SHA384_LEN]; /* the SHA-384 digest (all logs here carry one) */
	struct tdc_rd data;      /* event data, a view into the log buffer */
	size_t offset;           /* of the event in the log */
};

struct tdc_evlog {
	enum tdc_evlog_kind kind;
	size_t n;
	struct tdc_event *ev;    /* malloc'd; data views point into the parsed buffer */
	size_t len;              /* bytes of events, without the padding after the last */
	size_t n_algs;
	uint16_t algs[TDC_EVLOG_MAX_ALGS];
};

/*
 * Parses a log (the buffer must outlive out). The first event must be the
 * legacy-format EV_NO_ACTION "Spec ID Event03" header; every following event
 * carries exactly the digests it lists. Known algorithms only, SHA-384
 * required, no duplicates, bounded counts and sizes. The log ends where the
 * rest of the buffer is all 0xFF (the CCEL area's erased padding) or all zero.
 */
int tdc_evlog_parse(const uint8_t *buf, size_t len, enum tdc_evlog_kind kind,
		    struct tdc_evlog *out, struct tdc_error *e) TDC_MUST_USE;
void tdc_evlog_free(struct tdc_evlog *l);

/* RTMR0..3 of a CC log: rtmr[i] = SHA-384(rtmr[i] || digest) for each event of MR index
 * i + 1, in log order; EV_NO_ACTION events are not extended. */
int tdc_evlog_replay(const struct tdc_evlog *l, uint8_t rtmr[TDC_RTMR_COUNT][TDC_SHA384_LEN],
		     struct tdc_error *e) TDC_MUST_USE;

/* "EV_EFI_ACTION", ... ("EV_0x%08x" is not returned: NULL for unknown types). */
const char *tdc_event_type_name(uint32_t type);
/* One printable line for an event's data, for explanations and audit records:
 * strings as text, UEFI variable names, GPT partition counts, image device paths.
 * Never more than cap - 1 characters; the data is untrusted (not covered by the
 * digest) and is only ever shown, never decided on. */
void tdc_event_describe(const struct tdc_event *ev, char *out, size_t cap);

/* A log writer (the simulator's log, tests). */
struct tdc_evlog_writer;
/* Starts a log with the Spec ID header for SHA-384 only. */
int tdc_evlog_writer_new(struct tdc_evlog_writer **out, struct tdc_error *e) TDC_MUST_USE;
/* Appends an event with its SHA-384 digest (index: MR index or PCR). */
int tdc_evlog_writer_add(struct tdc_evlog_writer *w, uint32_t index, uint32_t type,
			 const uint8_t digest[TDC_SHA384_LEN], const void *data, size_t len,
			 struct tdc_error *e) TDC_MUST_USE;
/* The log; the writer is freed either way. */
int tdc_evlog_writer_finish(struct tdc_evlog_writer *w, uint8_t **out, size_t *len,
			    struct tdc_error *e) TDC_MUST_USE;
void tdc_evlog_writer_free(struct tdc_evlog_writer *w);

/* ---- predicted events (events.c, grub.c, linux.c, predict.c) ---- */

#define TDC_PRED_MAX_EVENTS 512u
#define TDC_PRED_WHAT 192u

/* What an event is about, for policies that rule on events and for explanations. */
enum tdc_event_role {
	TDC_ROLE_OTHER = 0,
	TDC_ROLE_FIRMWARE,   /* firmware configuration: variables, ACPI, TD HOB, CFV, actions */
	TDC_ROLE_SEPARATOR,
	TDC_ROLE_GPT,
	TDC_ROLE_BOOT_APP,   /* the EFI boot loader started from the disk */
	TDC_ROLE_KERNEL,
	TDC_ROLE_INITRD,
	TDC_ROLE_CMDLINE,
	TDC_ROLE_BOOT_CONFIG, /* grub.cfg and other files GRUB reads */
	TDC_ROLE_BOOT_COMMAND, /* a GRUB command */
};
const char *tdc_event_role_name(enum tdc_event_role r);
/* Parses a role name ("kernel", ...); -1 if unknown. */
int tdc_event_role_parse(const char *s);

struct tdc_pred_event {
	unsigned rtmr;                  /* 0..3 */
	uint32_t type;
	enum tdc_event_role role;
	bool known;                     /* digest is predicted */
	uint8_t digest[TDC_SHA384_LEN];
	char what[TDC_PRED_WHAT];       /* "kernel_cmdline: /vmlinuz ro ...", "\\EFI\\BOOT\\BOOTX64.EFI" */
	char why[TDC_PRED_WHAT];        /* !known: what the digest depends on */
};

struct tdc_prediction {
	size_t n;
	struct tdc_pred_event ev[TDC_PRED_MAX_EVENTS];
	/* An RTMR is predicted when every event is known and the list is known to be complete. */
	bool predicted[TDC_RTMR_COUNT];
	uint8_t rtmr[TDC_RTMR_COUNT][TDC_SHA384_LEN];
	char why[TDC_RTMR_COUNT][TDC_PRED_WHAT]; /* !predicted: why not */
	bool truncated[TDC_RTMR_COUNT];          /* events after the last listed one are unknown */
	size_t n_notes;
	char notes[8][256];                      /* warnings for the operator */
};

/* Appends a known event (SHA-384 of data, or digest if data is NULL). */
int tdc_pred_add(struct tdc_prediction *p, unsigned rtmr, uint32_t type, enum tdc_event_role role,
		 const uint8_t *digest, const void *data, size_t len, const char *what,
		 struct tdc_error *e) TDC_MUST_USE;
/* Appends an event whose digest cannot be predicted, and why. */
int tdc_pred_add_unknown(struct tdc_prediction *p, unsigned rtmr, uint32_t type,
			 enum tdc_event_role role, const char *what, const char *why,
			 struct tdc_error *e) TDC_MUST_USE;
/* Marks rtmr as not predictable from here on (events after the last are unknown). */
void tdc_pred_stop(struct tdc_prediction *p, unsigned rtmr, const char *why);
void tdc_pred_note(struct tdc_prediction *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Computes rtmr[] for every RTMR whose events are all known and not truncated. */
int tdc_pred_finish(struct tdc_prediction *p, struct tdc_error *e) TDC_MUST_USE;

/* Fixed UEFI events. */
#define TDC_ACTION_CALLING_EFI_APP "Calling EFI Application from Boot Option"
#define TDC_ACTION_EBS_INVOCATION "Exit Boot Services Invocation"
#define TDC_ACTION_EBS_SUCCESS "Exit Boot Services Returned with Success"
/* EV_EFI_ACTION and EV_SEPARATOR events as the firmware extends them (RTMR 0..3). */
int tdc_pred_action(struct tdc_prediction *p, unsigned rtmr, const char *action,
		    struct tdc_error *e) TDC_MUST_USE;
int tdc_pred_separator(struct tdc_prediction *p, unsigned rtmr, struct tdc_error *e) TDC_MUST_USE;

/*
 * The UEFI_GPT_DATA event (EV_EFI_GPT_EVENT) the firmware measures for the boot disk: the
 * 92-byte header at LBA 1, the number of used entries, the used entries in slot order.
 * disk is the disk's first bytes (at least the header and the entry array).
 */
int tdc_pred_gpt(struct tdc_prediction *p, unsigned rtmr, const uint8_t *disk, size_t len,
		 struct tdc_error *e) TDC_MUST_USE;

/* ---- Linux bzImage and QEMU direct kernel boot (linux.c) ---- */

#define TDC_KERNEL_MAX_IMAGE (128u * 1024u * 1024u)

struct tdc_bzimage {
	uint16_t protocol;       /* boot protocol version (0x20f for Linux 6.x) */
	uint8_t loadflags;
	uint16_t xloadflags;
	uint32_t initrd_addr_max;
	uint32_t setup_size;     /* bytes of real-mode setup */
	bool efi_stub;           /* a PE image: UEFI can LoadImage it (and measures it) */
	char version[128];       /* "6.1.0-50-amd64 (debian-kernel@...) #1 SMP ..." */
	unsigned major, minor;   /* of the version string; 0.0 if unknown */
};
/* Reads the setup header of a bzImage (Documentation/arch/x86/boot.rst). */
int tdc_bzimage_parse(const uint8_t *k, size_t len, struct tdc_bzimage *out, struct tdc_error *e)
	TDC_MUST_USE;

/* A QEMU direct kernel boot (-kernel/-initrd/-append) on the q35 machine. */
struct tdc_qemu_boot {
	uint64_t memory_bytes;
	bool has_initrd;
	uint64_t initrd_size;
	const char *cmdline;
	unsigned qemu_major, qemu_minor;
};
/*
 * Whether QEMU hands the firmware a kernel with its setup header patched (type_of_loader,
 * heap, command line pointer, initrd address and size): QEMU < 10.2 patches, except that
 * QEMU >= 10.0 also serves the original file (etc/boot/kernel), which OVMF >= edk2-stable202502
 * prefers. ovmf_named_blobs says the firmware is that recent.
 */
bool tdc_qemu_patches_kernel(const struct tdc_qemu_boot *q, bool ovmf_named_blobs);
/*
 * The kernel as QEMU's x86 loader patches it (hw/i386/x86.c, x86_load_linux): a malloc'd copy
 * of k. Refuses kernels QEMU would load another way (boot protocol < 2.02 or not loaded high),
 * a vga= option (not modelled) and an initrd that does not fit below 4 GiB.
 */
int tdc_qemu_patch_kernel(const uint8_t *k, size_t len, const struct tdc_qemu_boot *q,
			  uint8_t **out, struct tdc_error *e) TDC_MUST_USE;

/* ---- GRUB (grub.c): the EFI image and what it measures running a grub.cfg ---- */

#define TDC_GRUB_MAX_MODULES 256u

struct tdc_grub_image {
	char version[48];          /* "2.06-13+deb12u2", "" if not found */
	unsigned major, minor;
	bool tpm_builtin;          /* the tpm module is in the core image: GRUB measures */
	bool cc_capable;           /* it knows EFI_CC_MEASUREMENT_PROTOCOL (TDX RTMRs) */
	bool has_config;           /* an embedded early config (run unmeasured, not modelled) */
	char prefix[128];          /* the prefix object: "(memdisk)/boot/grub" */
	size_t n_builtin;
	char builtin[TDC_GRUB_MAX_MODULES][32];
	bool has_memdisk;
	struct tdc_rd memdisk;     /* a tar, a view into the image */
};

/* Reads the module area ("mods" section) of a GRUB EFI image: built-in modules, memdisk,
 * prefix, early config, version. The image must outlive g. */
int tdc_grub_image_parse(const uint8_t *efi, size_t len, struct tdc_grub_image *g,
			 struct tdc_error *e) TDC_MUST_USE;
/* A file of the memdisk tar ("boot/grub/grub.cfg"); TDC_E_NOT_FOUND if absent. */
int tdc_grub_memdisk_file(const struct tdc_grub_image *g, const char *path, struct tdc_rd *out,
			  struct tdc_error *e) TDC_MUST_USE;

/* The disk GRUB sees as hd0: partitions by number, files read from them. */
struct tdc_grub_disk {
	void *arg;
	/* 1-based number of the partition whose filesystem has this UUID (as GRUB prints it:
	 * lower-case for ext4, "XXXX-XXXX" for FAT), or 0 */
	unsigned (*find_uuid)(void *arg, const char *uuid);
	/* path (absolute, symlinks followed) of partition part; TDC_E_NOT_FOUND if absent.
	 * *buf is malloc'd. */
	int (*read)(void *arg, unsigned part, const char *path, uint8_t **buf, size_t *len,
		    struct tdc_error *e);
};

/* What the default menu entry boots, as GRUB would. */
struct tdc_grub_boot {
	char kernel_path[256];      /* as written: "/vmlinuz" */
	uint8_t *kernel;            /* malloc'd file contents */
	size_t kernel_len;
	size_t n_initrd;
	uint8_t *initrd;            /* malloc'd, the initrd files concatenated */
	size_t initrd_len;
	char cmdline[4096];         /* as the kernel sees it: "BOOT_IMAGE=/vmlinuz root=..." */
	char loader[16];            /* "linux" or "linuxefi" */
	char title[128];
};
void tdc_grub_boot_free(struct tdc_grub_boot *b);

/*
 * Runs the image's embedded grub.cfg the way GRUB would and, if measure is set, appends the
 * events GRUB extends (EV_IPL into RTMR2: "grub_cmd: ..." commands after expansion, files read
 * from disk, "kernel_cmdline: ..."). It follows a deterministic subset of GRUB script:
 * commands, quoting, $variables, set, search --fs-uuid, configfile, source, insmod of built-in
 * or memdisk modules, menuentry, linux/linuxefi, initrd/initrdefi, serial, terminal_*, echo,
 * and boots the default entry. Anything else (if, functions, load_env, modules read from
 * disk...) stops the prediction of RTMR2 there, with the reason. boot receives what would be
 * booted (kernel, initrd, command line) when the script gets that far.
 */
int tdc_grub_predict(const struct tdc_grub_image *g, const struct tdc_grub_disk *d, bool measure,
		     struct tdc_prediction *p, struct tdc_grub_boot *boot, struct tdc_error *e)
	TDC_MUST_USE;

/* ---- a whole boot (predict.c) ---- */

enum tdc_boot_path {
	TDC_BOOT_UEFI = 0,   /* the firmware starts the disk's EFI loader (GRUB), which loads Linux */
	TDC_BOOT_DIRECT = 1, /* QEMU -kernel/-initrd/-append through the firmware */
};
const char *tdc_boot_path_name(enum tdc_boot_path b);

enum tdc_measure_target {
	/* a TD: what TDVF, the boot loader and Linux extend through the CC measurement protocol */
	TDC_TARGET_TD = 0,
	/* tdcrypt's simulated TD (QEMU TCG, OVMF, a vTPM): what they extend through TCG2, mapped
	 * to RTMRs as TDVF maps PCRs (1,7 -> RTMR0; 2-6 -> RTMR1; 8-15 -> RTMR2) */
	TDC_TARGET_SIM = 1,
};
const char *tdc_measure_target_name(enum tdc_measure_target t);

struct tdc_boot_inputs {
	enum tdc_boot_path path;
	enum tdc_measure_target target;
	const uint8_t *fw;           /* the TDVF (OVMF) image the launcher uses */
	size_t fw_len;
	enum tdc_mrtd_order mrtd_order;
	/* UEFI: the boot disk's first bytes (PMBR, GPT header, entries), its EFI loader and
	 * the disk GRUB reads */
	const uint8_t *disk_head;
	size_t disk_head_len;
	const uint8_t *loader;
	size_t loader_len;
	const char *loader_path;     /* "\\EFI\\BOOT\\BOOTX64.EFI" */
	const struct tdc_grub_disk *grub_disk;
	/* direct: the files QEMU is given, and the machine */
	const uint8_t *kernel, *initrd;
	size_t kernel_len, initrd_len;
	const char *cmdline;
	struct tdc_qemu_boot qemu;
	bool ovmf_named_blobs;       /* firmware >= edk2-stable202502 (etc/boot/kernel) */
};

struct tdc_reference {
	struct tdc_tdvf tdvf;
	uint8_t mrtd[TDC_SHA384_LEN];
	struct tdc_prediction pred;
	/* what is booted: the loader's choice (UEFI) or the inputs (direct) */
	struct tdc_grub_image grub;  /* UEFI */
	struct tdc_grub_boot boot;   /* UEFI: kernel, initrd and command line GRUB loads */
	struct tdc_bzimage kernel;
	/* whether the kernel, initrd and command line reach an RTMR on this target */
	bool kernel_measured, initrd_measured, cmdline_measured;
};

/* Predicts MRTD and the events of RTMR0..3 (every event either with its digest or with what
 * it depends on). out is large: allocate it. Free with tdc_reference_free. */
int tdc_predict_boot(const struct tdc_boot_inputs *in, struct tdc_reference *out,
		     struct tdc_error *e) TDC_MUST_USE;
void tdc_reference_free(struct tdc_reference *r);

/* The ACPI CCEL table (UEFI 2.10 section 38.4.2): where the firmware left the CC event log. */
#define TDC_CCEL_TABLE_SIZE 56u
#define TDC_CC_TYPE_TDX 2u
struct tdc_ccel_table {
	uint8_t cc_type, cc_subtype;
	uint64_t laml;  /* log area minimum length */
	uint64_t lasa;  /* log area start address */
};
/* Checks signature, length, checksum; CC type must be TDX. */
int tdc_ccel_table_parse(const uint8_t *t, size_t len, struct tdc_ccel_table *out,
			 struct tdc_error *e) TDC_MUST_USE;
void tdc_ccel_table_build(uint64_t laml, uint64_t lasa, uint8_t out[TDC_CCEL_TABLE_SIZE]);

/*
 * The simulator's stand-in for TDVF: the CC event log a TD would have from the events a vTPM
 * log records, PCRs mapped to RTMRs as TDVF maps them (1,7 -> RTMR0; 2-6 -> RTMR1;
 * 8-15 -> RTMR2), the PCR 0 events dropped (on TDX the firmware code is in MRTD) and one
 * separator per RTMR, as TDVF measures them. *out is malloc'd.
 */
int tdc_evlog_tpm_to_cc(const struct tdc_evlog *tpm, uint8_t **out, size_t *len,
			struct tdc_error *e) TDC_MUST_USE;

/*
 * Checks the event data of every event whose digest the specs define as a hash of it
 * (separators, EV_EFI_ACTION strings, the GPT event, Secure Boot and authority variables, boot
 * variables (their data part), GRUB's command and command-line strings), so that text shown
 * in explanations cannot differ from what was measured. Other events (files, images, ACPI,
 * tagged events) carry a description that nothing can check; only their digests count.
 * TDC_E_BINDING names the first event whose data does not match its digest.
 */
int tdc_evlog_check_data(const struct tdc_evlog *l, struct tdc_error *e) TDC_MUST_USE;

/*
 * The check a verifier makes of the event log that comes with a verified quote: the CCEL table
 * (if given; the log must fit its area), the log's structure, its event data where digests
 * define it (tdc_evlog_check_data), and its replay, which must equal the quote's RTMRs exactly
 * (TDC_E_BINDING otherwise, naming the RTMR). On success *out is the log, for policies that
 * rule on its events (tdc_evlog_free it).
 */
int tdc_evlog_verify(const uint8_t *log, size_t len, const uint8_t *ccel_table,
		     const uint8_t rtmr[TDC_RTMR_COUNT][TDC_SHA384_LEN], struct tdc_evlog *out,
		     struct tdc_error *e) TDC_MUST_USE;
