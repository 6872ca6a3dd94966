/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The launcher (`tdcrypt launch`): the QEMU command line for an encrypted
 * guest, built as an argument vector (never a shell string), in two forms:
 *
 *   TDX     upstream QEMU >= 10.1: tdx-guest object with a quote-generation
 *           socket (vsock 2:4050), q35 with split irqchip and a memory backend,
 *           TDVF (OVMF.inteltdx.fd) as -bios, -accel kvm, -cpu host, no SMM.
 *   no-TDX  what runs anywhere (tests, demos): q35, -accel tcg, -cpu max, OVMF as -bios
 *           (or code + a writable vars file as pflash), a vTPM (swtpm) whose event log the
 *           quote simulator turns into RTMRs. Never KVM.
 *
 * Both: -nodefaults -no-user-config -display none -no-reboot, a virtio disk,
 * virtio-net on user-mode networking with restrict=on (the guest reaches
 * nothing) plus at most one guestfwd rule to the broker, whose command QEMU
 * runs per guest connection; an optional SSH port forward bound to 127.0.0.1;
 * no monitor, or one on a Unix socket.
 *
 * Also the stdio <-> TCP relay that `tdcrypt forward` runs as that command.
 * Nothing here prints.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"

#define TDC_LAUNCH_QEMU "qemu-system-x86_64"
/* Where the guest finds the broker: slirp's guestfwd address and the protocol's port. */
#define TDC_LAUNCH_GUEST_BROKER_ADDR "10.0.2.100"
#define TDC_LAUNCH_GUEST_BROKER_PORT 50051u
/* QGS on the host, as the TDX guest's GetQuote is forwarded by QEMU (vsock CID 2 = host). */
#define TDC_LAUNCH_QGS_CID 2u
#define TDC_LAUNCH_QGS_PORT 4050u
#define TDC_LAUNCH_DEFAULT_MEMORY_MIB 2048u
#define TDC_LAUNCH_DEFAULT_CPUS 2u
#define TDC_LAUNCH_MAX_CPUS 512u
#define TDC_LAUNCH_MAX_MEMORY_MIB (4u * 1024u * 1024u)
/* Debian 12 (ovmf package): the combined image with TDX metadata, the firmware of the TCG
 * form (as -bios: variables in memory, as in a TD), whose MRTD `tdcrypt measure` can compute. */
#define TDC_LAUNCH_OVMF "/usr/share/ovmf/OVMF.fd"
/* Code + variables as pflash, when --vars is given. */
#define TDC_LAUNCH_OVMF_CODE "/usr/share/OVMF/OVMF_CODE_4M.fd"
#define TDC_LAUNCH_OVMF_VARS "/usr/share/OVMF/OVMF_VARS_4M.fd"

/* The firmware the launcher uses by default: TDX, the first TDVF found where distributions
 * install it (OVMF.inteltdx.fd); TCG, TDC_LAUNCH_OVMF. `tdcrypt measure` measures the same. */
const char *tdc_launch_default_firmware(bool tdx);

enum tdc_disk_format {
	TDC_DISK_RAW = 0,
	TDC_DISK_QCOW2,
};
const char *tdc_disk_format_name(enum tdc_disk_format f);

struct tdc_launch_opts {
	const char *qemu;           /* NULL: TDC_LAUNCH_QEMU */
	bool tdx;
	const char *image;          /* required */
	enum tdc_disk_format image_format;
	bool snapshot;              /* writes go to a temporary overlay (snapshot=on) */
	bool readonly;              /* open the disk read-only */
	uint32_t memory_mib;        /* 0: default */
	uint32_t cpus;              /* 0: default */
	/* Firmware, required: TDX, the TDVF image (-bios); no-TDX, OVMF as -bios, or OVMF code
	 * as pflash when vars (a writable variable store) is given. */
	const char *firmware;
	const char *vars;
	/* no-TDX: a swtpm control socket; the guest gets a TPM 2.0 (tpm-tis) on it */
	const char *vtpm_socket;
	/* Direct kernel boot (optional; append/initrd only with kernel). */
	const char *kernel, *initrd, *append;
	/* The guestfwd command, as words (program first); NULL: no broker forward.
	 * Each word is quoted for libslirp's shell-style split and commas are doubled. */
	const char *const *forward_cmd;
	size_t forward_argc;
	uint16_t guest_broker_port; /* 0: TDC_LAUNCH_GUEST_BROKER_PORT */
	uint16_t ssh_port;          /* 0: none; else hostfwd tcp 127.0.0.1:ssh_port -> :22 */
	const char *serial_log;     /* NULL: serial on stdio */
	const char *monitor_socket; /* NULL: -monitor none; else a Unix socket path */
	const char *name;           /* -name, optional */
	/* TDX quote generation service (0: defaults 2:4050). */
	uint32_t qgs_cid, qgs_port;
};

/* A NULL-terminated argument vector (v[n] == NULL), every string owned. */
struct tdc_argv {
	char **v;
	size_t n, cap;
};
void tdc_argv_free(struct tdc_argv *a);

/*
 * Builds the QEMU argument vector for o (v[0] is the QEMU program). Refuses
 * (TDC_E_USAGE) what QEMU would misread or what breaks the isolation: no image,
 * initrd/append without kernel, no firmware, a path with a control character,
 * memory/cpus out of range, an empty forward command.
 */
int tdc_launch_argv(const struct tdc_launch_opts *o, struct tdc_argv *out, struct tdc_error *e)
	TDC_MUST_USE;

/* Doubles every comma (QEMU option-value escaping). Returns a malloc'd string. */
char *tdc_qemu_escape(const char *s);
/* Quotes s for a POSIX shell (and GLib's g_shell_parse_argv): unchanged if it
 * consists only of safe characters, else '...' with ' written as '\''. Malloc'd. */
char *tdc_shell_quote(const char *s);
/* The whole vector, each word shell-quoted, separated by spaces. Malloc'd. */
char *tdc_argv_format(const struct tdc_argv *a);

/* Detects qcow2 by its magic, else raw. */
int tdc_disk_format_detect(const char *path, enum tdc_disk_format *f, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * Parses "HOST:PORT", "[V6]:PORT" or "PORT" (host 127.0.0.1) into host (cap
 * bytes) and port (1..65535).
 */
int tdc_hostport_parse(const char *s, char *host, size_t cap, uint16_t *port,
		       struct tdc_error *e) TDC_MUST_USE;

/*
 * The relay behind `tdcrypt forward`: connects to host:port (timeout
 * connect_ms), then copies in_fd -> socket and socket -> out_fd until both
 * directions are closed, propagating each half-close (EOF on in_fd:
 * shutdown(SHUT_WR) of the socket; EOF from the socket: shutdown of out_fd if
 * it is a socket, else close). Gives up after idle_ms without traffic
 * (TDC_E_IO). tdc_relay_run closes nothing; the caller owns the fds.
 */
#define TDC_RELAY_CONNECT_MS 5000u
#define TDC_RELAY_IDLE_MS 300000u
int tdc_relay_connect(const char *host, uint16_t port, uint32_t connect_ms, int *fd,
		      struct tdc_error *e) TDC_MUST_USE;
int tdc_relay_run(int in_fd, int out_fd, int sock, uint32_t idle_ms, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * A vTPM for the TCG form (the quote simulator takes the RTMRs from its event log): swtpm
 * with a SHA-384 PCR bank, state in a fresh temporary directory, a control socket QEMU
 * connects to. swtpm ends when QEMU disconnects; a small supervisor process then removes the
 * directory. Needs swtpm and swtpm_setup (Debian packages swtpm, swtpm-tools).
 */
struct tdc_vtpm {
	char dir[256];
	char socket[300];
	int pid; /* the supervisor */
};
int tdc_vtpm_start(struct tdc_vtpm *v, struct tdc_error *e) TDC_MUST_USE;
