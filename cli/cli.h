/* SPDX-License-Identifier: Apache-2.0 */
/* The tdcrypt command: one file per subcommand, all logic in libtdcrypt. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tdcrypt/collateral.h"
#include "tdcrypt/error.h"

/* Exit codes shared by every subcommand (documented in README.md). */
enum tdc_exit {
	TDC_EXIT_OK = 0,          /* verified, status UpToDate / success */
	TDC_EXIT_DEGRADED = 1,    /* verified, but a status other than UpToDate */
	TDC_EXIT_REJECTED = 2,    /* verification or policy refused the input */
	TDC_EXIT_BAD_INPUT = 3,   /* unreadable / malformed input, bad usage */
	TDC_EXIT_INTERNAL = 4,    /* our own failure (out of memory, ...) */
};

int cmd_quote_show(int argc, char **argv);
int cmd_quote_verify(int argc, char **argv);
int cmd_launch(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_sim_init(int argc, char **argv);
int cmd_sim_quote(int argc, char **argv);
int cmd_secret_add(int argc, char **argv);
int cmd_secret_list(int argc, char **argv);
int cmd_secret_rm(int argc, char **argv);
int cmd_secret_rotate(int argc, char **argv);
int cmd_secret_import(int argc, char **argv);
int cmd_secret_audit(int argc, char **argv);
int cmd_broker_metrics(int argc, char **argv);
int cmd_policy_set(int argc, char **argv);
int cmd_policy_show(int argc, char **argv);
int cmd_policy_explain(int argc, char **argv);
int cmd_image_encrypt(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_eventlog_show(int argc, char **argv);
int cmd_policy_from_image(int argc, char **argv);

/* ---- reference values (cmd-measure.c), shared with image encrypt --emit-policy ---- */
struct tdc_reference;
struct tdc_policy_reference;
struct measure_args {
	const char *image, *kernel, *initrd, *cmdline, *firmware, *boot, *target, *out;
	uint32_t memory_mib;
	unsigned qemu_major, qemu_minor; /* 0: the installed QEMU's */
	bool two_pass, json, allow_unmeasured;
};
struct measure_run {
	uint8_t *fw;
	size_t fw_len;
	char fw_sha256[65], fw_package[96];
	unsigned qemu_major, qemu_minor;
	struct tdc_reference *ref;
};
/* Parses the measure options from argv[first]; fills defaults (boot, target, firmware). */
int measure_parse(int argc, char **argv, int first, struct measure_args *a);
/* Reads the inputs and predicts; prints errors; returns an exit code. */
int measure_run(const struct measure_args *a, struct measure_run *m);
void measure_free(struct measure_run *m);
void measure_reference_meta(const struct measure_args *a, const struct measure_run *m,
			    struct tdc_policy_reference *r);
/* The policy of the predicted boot (canonical JSON, malloc'd); prints errors and the RTMRs
 * left unpinned; returns an exit code. */
int measure_policy(const struct measure_args *a, char **json);
/* Writes text to path (0644, replaced atomically), or to stdout if path is NULL or "-". */
int cli_write_text(const char *path, const char *text);

struct json_object;
/* The broker's admin socket: opt, else $TDCRYPT_KBS_SOCKET, else the default. */
const char *cli_admin_socket(const char *opt);
/* Sends one request line (ending in \n) and reads the reply object; prints the
 * broker's error or warning. Returns an exit code; *reply set on success. */
int cli_admin_call(const char *sock, const char *req, size_t len, struct json_object **reply);
/* A policy file validated as a JSON object, compact (malloc'd), or NULL (printed). */
char *cli_read_policy(const char *path);

/* Prints "tdcrypt: <what>: <reason: detail (at offset N)>" and a hint. */
void cli_print_error(const char *what, const struct tdc_error *e);
/* Reads a quote file ('-' = stdin), binary or hex text (optional 0x prefix,
 * whitespace); returns the binary quote (free with free()). */
int cli_read_quote(const char *path, uint8_t **out, size_t *len, struct tdc_error *e);
/* --at: RFC 3339, or @UNIX seconds; NULL means now (the only wall-clock read). */
int cli_parse_time(const char *s, int64_t *out, struct tdc_error *e);
/* A root certificate file, DER or PEM, returned as DER (free with free()). */
int cli_read_root_der(const char *path, uint8_t **der, size_t *der_len, struct tdc_error *e);
/* A decimal in [min, max]; -1 otherwise. */
int cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* The verification options shared by `quote verify` and `policy explain`. */
struct cli_verify_opts {
	const char *collateral, *at, *root;
	uint32_t min_eval;
	bool json;
};
/* Consumes argv[*i] (and its value) if it is one of those options: returns 1,
 * 0 if it is not (or lacks its value), -1 after printing a bad value. */
int cli_verify_opt(int argc, char **argv, int *i, struct cli_verify_opts *o, const char *cmd);

/* What both commands read before a verdict: "now", the quote, the collateral, the test
 * root (with its warning, `why` saying what the verdict then means) and the verifier. */
struct tdc_verifier;
struct cli_verify_inputs {
	int64_t now;
	uint8_t *quote, *root;
	size_t quote_len, root_len;
	struct tdc_collateral coll;
	struct tdc_verifier *ver;
};
/* Returns TDC_EXIT_OK, or the exit code after printing the error; free in both cases. */
int cli_verify_load(const struct cli_verify_opts *o, const char *quote_path, const char *why,
		    struct cli_verify_inputs *in);
void cli_verify_inputs_free(struct cli_verify_inputs *in);

/* Maps an error code to an exit code (format/io/usage -> BAD_INPUT, ...). */
int cli_exit_for(int code);
