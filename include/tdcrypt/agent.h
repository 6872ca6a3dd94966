/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest agent (tdcrypt-agent, runs in the initramfs): its config, the
 * quote providers (configfs-tsm, /dev/tdx_guest + QGS over vsock, simulator),
 * the RA-TLS client of docs/PROTOCOL.md with retries, and the LUKS2 header
 * checks and unlock of docs/LUKS-HEADER.md.
 *
 * Nothing here prints: the orchestration (tdc_agent_run) reports through a
 * log callback; agent/main.c is the only place that writes to the console.
 * Clocks, randomness and sleeping are injected (struct tdc_agent_clock), so
 * tests never wait for real.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tdcrypt/error.h"
#include "tdcrypt/measure.h"
#include "tdcrypt/store.h"
#include "util/rd.h"

#define TDC_AGENT_VERSION TDC_VERSION_STRING /* the meson project version */
#define TDC_AGENT_MAX_BROKERS 8
#define TDC_AGENT_MAX_PINS 8
#define TDC_AGENT_HOST_MAX 255
#define TDC_AGENT_SECRET_ID_MAX 64
#define TDC_AGENT_DEFAULT_CONFIG "/etc/tdcrypt/agent.json"
#define TDC_AGENT_DEFAULT_CMDLINE "/proc/cmdline"
#define TDC_TSM_DEFAULT_ROOT "/sys/kernel/config/tsm/report"
/* The CC event log: the CCEL ACPI table and, under data/, the log area it points to. */
#define TDC_ACPI_TABLES "/sys/firmware/acpi/tables"
/* The firmware's TPM event log (the simulator's source of measurements). */
#define TDC_TPM_EVENT_LOG "/sys/kernel/security/tpm0/binary_bios_measurements"
#define TDC_TDX_GUEST_DEVICE "/dev/tdx_guest"
#define TDC_QGS_VSOCK_CID 2u
#define TDC_QGS_VSOCK_PORT 4050u

/* ---- exit codes of tdcrypt-agent (agent/README.md) ---- */
enum tdc_agent_exit {
	TDC_AGENT_EXIT_OK = 0,
	TDC_AGENT_EXIT_CONFIG = 2,     /* bad config file / command line / usage */
	TDC_AGENT_EXIT_NO_QUOTE = 3,   /* no quote provider worked */
	TDC_AGENT_EXIT_NO_NETWORK = 4, /* no broker could be reached before the deadline */
	TDC_AGENT_EXIT_DENIED = 5,     /* a broker refused: its reason code is printed */
	TDC_AGENT_EXIT_BAD_BROKER = 6, /* pin/CA mismatch or TLS failure with every broker */
	TDC_AGENT_EXIT_BAD_HEADER = 7, /* LUKS header refused (structure or digest) */
	TDC_AGENT_EXIT_UNLOCK = 8,     /* the key did not open the keyslot / activation failed */
	TDC_AGENT_EXIT_INTERNAL = 9,
};
/* Short name of an exit code ("denied", ...). */
const char *tdc_agent_exit_name(int code);

/* ---- config (JSON file + kernel command line) ---- */

enum tdc_agent_provider {
	TDC_PROVIDER_AUTO = 0, /* configfs -> tdx_guest; never sim */
	TDC_PROVIDER_CONFIGFS,
	TDC_PROVIDER_TDX_GUEST,
	TDC_PROVIDER_SIM,
};
const char *tdc_agent_provider_name(enum tdc_agent_provider p);

struct tdc_agent_broker {
	char host[TDC_AGENT_HOST_MAX + 1]; /* DNS name or IP literal (no brackets) */
	uint16_t port;
	bool is_ip;
};

struct tdc_agent_config {
	size_t n_brokers;
	struct tdc_agent_broker brokers[TDC_AGENT_MAX_BROKERS];
	size_t n_pins;
	uint8_t pins[TDC_AGENT_MAX_PINS][32];
	char *broker_ca; /* PEM file, or NULL */
	char secret_id[TDC_AGENT_SECRET_ID_MAX + 1];
	char *luks_device;
	char *luks_name;
	uint8_t header_sha256[32];
	int keyslot;
	enum tdc_agent_provider provider;
	uint32_t total_timeout_ms;   /* whole key fetch, all brokers and retries */
	uint32_t attempt_timeout_ms; /* one connection: connect + handshake + reply */
	uint32_t connect_timeout_ms;
	uint32_t backoff_initial_ms, backoff_max_ms;
	char *sim_dir;      /* provider "sim": a `tdcrypt sim init` directory */
	char *tpm_log;      /* provider "sim": the vTPM event log (default TDC_TPM_EVENT_LOG) */
	char *tsm_root;     /* configfs-tsm report directory */
	char *acpi_tables;  /* where the CCEL table is (default TDC_ACPI_TABLES) */
	bool debug;
};

/* The defaults of every optional member (timeouts, backoff, provider auto); the rest zero.
 * The parsers start from these; a program that fills a config itself starts here too. */
void tdc_agent_config_defaults(struct tdc_agent_config *c);
/* Parses the agent config (agent/README.md); unknown members are refused. */
int tdc_agent_config_parse(const uint8_t *json, size_t len, struct tdc_agent_config *c,
			   struct tdc_error *e) TDC_MUST_USE;
int tdc_agent_config_load(const char *path, struct tdc_agent_config *c,
			  struct tdc_error *e) TDC_MUST_USE;
/* Over c: only what the machine decides (provider, timeouts, backoff, sim_dir, tpm_log,
 * tsm_root, acpi_tables, debug), never where the key is: the clevis pin's local file. */
int tdc_agent_config_machine(const uint8_t *json, size_t len, struct tdc_agent_config *c,
			     struct tdc_error *e) TDC_MUST_USE;
/* 1-64 of [A-Za-z0-9._-], not starting with '.' */
bool tdc_agent_secret_id_ok(const char *s, size_t len);
/*
 * Applies the tdcrypt.* options of a kernel command line: tdcrypt.broker=H:P[,H:P..]
 * (replaces the list), tdcrypt.provider=auto|configfs|tdx_guest|vsock|sim,
 * tdcrypt.timeout=SECONDS, tdcrypt.debug. Other words are ignored; a bad tdcrypt.*
 * value is an error. Pins and the CA are deliberately not overridable.
 */
int tdc_agent_config_cmdline(struct tdc_agent_config *c, const char *cmdline, size_t len,
			     struct tdc_error *e) TDC_MUST_USE;
/* Checks cross-field rules (pin or CA present, sim dir for sim, ...). */
int tdc_agent_config_check(const struct tdc_agent_config *c, struct tdc_error *e) TDC_MUST_USE;
void tdc_agent_config_free(struct tdc_agent_config *c);
/* "host:port", "[v6]:port" or "host" (port TDC_RATLS_DEFAULT_PORT). */
int tdc_agent_broker_parse(const char *s, size_t len, struct tdc_agent_broker *b,
			   struct tdc_error *e) TDC_MUST_USE;

/* ---- quote providers ---- */

/* configfs-tsm steps a test can hook into (a fake configfs has no kernel behind it). */
enum tdc_tsm_step {
	TDC_TSM_MKDIR,   /* the report entry exists */
	TDC_TSM_INBLOB,  /* inblob written (the kernel bumps generation here) */
	TDC_TSM_OUTBLOB, /* outblob read, before generation is read again */
};

struct tdc_tsm_opts {
	const char *root;      /* default TDC_TSM_DEFAULT_ROOT */
	const char *name;      /* entry name; default "tdcrypt-<pid>" */
	unsigned max_attempts; /* generation races tolerated; default 4 */
	void (*hook)(void *arg, enum tdc_tsm_step step, const char *entry, unsigned attempt);
	void *hook_arg;
};

/* True if root exists and is a directory (configfs-tsm available). */
bool tdc_tsm_available(const char *root);
/* Quote for report_data through configfs-tsm (A5): provider must be tdx_guest,
 * generation must advance by exactly one around the outblob read. */
int tdc_tsm_get_quote(const struct tdc_tsm_opts *o, const uint8_t report_data[64], uint8_t **quote,
		      size_t *len, struct tdc_error *e) TDC_MUST_USE;

/* QGS message protocol (A5), little-endian, after a 4-byte big-endian length. */
#define TDC_QGS_HEADER_SIZE 16u
#define TDC_QGS_GET_QUOTE_REQ 0u
#define TDC_QGS_GET_QUOTE_RESP 1u
#define TDC_TDREPORT_SIZE 1024u

/* 4-byte BE length || GET_QUOTE_REQ {header, report_size, id_list_size=0, report}. */
int tdc_qgs_encode_get_quote_req(const uint8_t *report, size_t report_len, uint8_t **out,
				 size_t *len, struct tdc_error *e) TDC_MUST_USE;
/* The 4-byte BE length prefix of a framed message. */
int tdc_qgs_frame_len(const uint8_t prefix[4], uint32_t *msg_len, struct tdc_error *e) TDC_MUST_USE;
/* Parses a GET_QUOTE_RESP message (without the length prefix); *quote is a view
 * into msg. QGS error codes are TDC_E_IO with the code in the detail. */
int tdc_qgs_decode_get_quote_resp(const uint8_t *msg, size_t len, struct tdc_rd *quote,
				  struct tdc_error *e) TDC_MUST_USE;

struct tdc_tdx_guest_opts {
	const char *device;  /* default TDC_TDX_GUEST_DEVICE */
	unsigned cid, port;  /* default 2, 4050 */
	uint32_t timeout_ms; /* QGS round trip, default 30 s */
};
bool tdc_tdx_guest_available(const char *device);
/* TDREPORT via TDX_CMD_GET_REPORT0, then a quote from the QGS over vsock. */
int tdc_tdx_guest_get_quote(const struct tdc_tdx_guest_opts *o, const uint8_t report_data[64],
			    uint8_t **quote, size_t *len, struct tdc_error *e) TDC_MUST_USE;

/* What the simulated TD's TDX module would report besides the RTMRs (DIR/td.json of a
 * `tdcrypt sim init` directory). The RTMRs come from the boot's event log. */
struct tdc_sim_td {
	uint8_t mrtd[48];
	uint8_t mrconfigid[48], mrowner[48], mrownerconfig[48];
	uint8_t td_attributes[8], xfam[8];
};
int tdc_sim_td_parse(const uint8_t *json, size_t len, struct tdc_sim_td *td,
		     struct tdc_error *e) TDC_MUST_USE;

/* The quote and the CC event log that goes with it (PROTOCOL.md section 6.1). */
struct tdc_agent_evidence {
	uint8_t *quote;
	size_t quote_len;
	uint8_t *event_log;    /* the CCEL log area up to its last event; NULL if none */
	size_t event_log_len;
	bool has_table;
	uint8_t ccel_table[TDC_CCEL_TABLE_SIZE];
};
void tdc_agent_evidence_free(struct tdc_agent_evidence *ev);

/*
 * The simulator's stand-in for TDVF and the TDX module: the vTPM's event log (tpm_log, default
 * TDC_TPM_EVENT_LOG) turned into a CC event log (tdc_evlog_tpm_to_cc), RTMR0..3 replayed from
 * it, and a quote with those RTMRs, MRTD etc. from dir/td.json, REPORTDATA report_data,
 * signed through dir/pki. ev receives the quote, the log and a CCEL table.
 */
int tdc_sim_dir_quote(const char *dir, const char *tpm_log, const uint8_t report_data[64],
		      int64_t now, struct tdc_agent_evidence *ev, struct tdc_error *e) TDC_MUST_USE;
/*
 * Creates a simulator directory: pki/ (keys 0600), collateral/ (bundle for the
 * broker's --collateral-dir), sim-root.pem (for the broker's simulator trust),
 * td.json (MRTD: mrtd, e.g. tdc_tdvf_mrtd of the firmware the launcher uses; NULL: zero).
 * Collateral is valid from now - 1 day to now + days.
 */
int tdc_sim_dir_init(const char *dir, int64_t now, uint32_t days, const uint8_t *mrtd,
		     struct tdc_error *e) TDC_MUST_USE;

/*
 * The TD's CC event log from ACPI: acpi_dir/CCEL (the table) and acpi_dir/data/CCEL (the log
 * area), cut after its last event. No table: ev->event_log stays NULL (not an error: older
 * kernels do not export it). A log larger than TDC_MAX_EVENT_LOG is TDC_E_LIMIT.
 */
int tdc_agent_read_ccel(const char *acpi_dir, struct tdc_agent_evidence *ev, struct tdc_error *e)
	TDC_MUST_USE;

/*
 * The provider chain: p (AUTO: configfs, then tdx_guest). The quote is
 * checked to parse and to carry report_data, and trimmed of trailing padding.
 * *used receives the provider that answered.
 */
/* What the chain checks of any provider's answer: it parses as a quote and carries
 * exactly report_data; *len is cut to the quote's own size (providers may pad). */
int tdc_agent_quote_check(const uint8_t *quote, size_t *len, const uint8_t report_data[64],
			  struct tdc_error *e) TDC_MUST_USE;
/* The quote (and the CC event log, when there is one) from the provider chain into ev. */
int tdc_agent_get_quote(const struct tdc_agent_config *c, const uint8_t report_data[64],
			int64_t now, struct tdc_agent_evidence *ev, enum tdc_agent_provider *used,
			struct tdc_error *e) TDC_MUST_USE;

/* ---- clock, backoff ---- */

struct tdc_agent_clock {
	int64_t (*now_ms)(void *arg); /* monotonic milliseconds */
	void (*sleep_ms)(void *arg, int64_t ms);
	uint32_t (*random)(void *arg); /* jitter source */
	void *arg;
};
/* CLOCK_MONOTONIC, nanosleep, RAND_bytes. */
const struct tdc_agent_clock *tdc_agent_real_clock(void);

/* Delay before retry round n (0-based): min(max, initial * 2^n), then a uniform
 * jitter in [delay/2, delay]. */
int64_t tdc_backoff_delay(uint32_t initial_ms, uint32_t max_ms, unsigned n, uint32_t rnd);

/* ---- one attempt against one broker ---- */

enum tdc_attempt_result {
	TDC_ATTEMPT_OK = 0,
	TDC_ATTEMPT_NO_NETWORK, /* resolve/connect failed or timed out, connection reset */
	TDC_ATTEMPT_BAD_BROKER, /* pin/CA check failed, TLS alert, not TLS 1.3 */
	TDC_ATTEMPT_DENIED,     /* reason code marked "stop" in PROTOCOL.md §6.2 */
	TDC_ATTEMPT_RETRY,      /* reason code marked "retry", timeout, bad response */
};

/* A broker's Retry-After is honoured up to this (a hostile one cannot park the agent). */
#define TDC_AGENT_MAX_RETRY_AFTER_S 60u

struct tdc_agent_reply {
	int http_status;
	unsigned retry_after_s; /* the broker's Retry-After (busy), 0: none */
	char request_id[33];
	char error[40];        /* reason code, "" on success */
	struct tdc_secret key; /* the secret on success (locked, wiped on free) */
};
void tdc_agent_reply_free(struct tdc_agent_reply *r);

/* The client's TLS 1.3 context: key + RA-TLS cert, pins and/or CA. */
int tdc_agent_tls_ctx(const struct tdc_agent_config *c, EVP_PKEY *key, X509 *cert, SSL_CTX **out,
		      struct tdc_error *e) TDC_MUST_USE;

/*
 * Connects to b, runs the TLS handshake, POSTs /v1/keys/<secret_id> and parses
 * the reply, all before deadline_ms (clock->now_ms scale; the connect step is
 * also capped by connect_ms). Marks "connected" after the handshake (ev may be
 * NULL). Returns a tdc_attempt_result; e says why.
 */
struct tdc_agent_events;
int tdc_agent_attempt(SSL_CTX *ctx, const struct tdc_agent_broker *b, const char *secret_id,
		      const char *body,
		      const struct tdc_agent_clock *clk, int64_t deadline_ms, uint32_t connect_ms,
		      const struct tdc_agent_events *ev, struct tdc_agent_reply *reply,
		      struct tdc_error *e);

/* ---- HTTP / JSON (exposed for tests) ---- */

/* The request body of PROTOCOL.md section 6.1: the agent's name and, if ev has one, the CC
 * event log and table, base64 (NUL-terminated, malloc'd). */
int tdc_agent_request_body(const struct tdc_agent_evidence *ev, char **out, struct tdc_error *e)
	TDC_MUST_USE;
/* The request of PROTOCOL.md §6.1 with that body (NUL-terminated, malloc'd). */
int tdc_agent_http_request(const char *host, const char *secret_id, const char *body, char **out,
			   size_t *len, struct tdc_error *e) TDC_MUST_USE;
/* Parses a whole HTTP/1.1 response (strict framing) and its JSON body into r.
 * A success must name secret_id. */
int tdc_agent_parse_response(const uint8_t *buf, size_t len, const char *secret_id,
			     struct tdc_agent_reply *r, struct tdc_error *e) TDC_MUST_USE;
/* PROTOCOL.md §6.2: true if the reason code means "stop" (unknown codes: by status). */
bool tdc_agent_reason_is_stop(const char *code, int http_status);

/* ---- retry loop ---- */

struct tdc_agent_events {
	/* A human line (no newline); level 0 info, 1 debug. */
	void (*log)(void *arg, int level, const char *msg);
	/* Timestamps for the boot-latency benchmark: "start", "quote", "connected", "key",
	 * "mapped". */
	void (*mark)(void *arg, const char *event);
	/* Called with each new socket before it connects; a negative return fails that
	 * connect (as a network error). The storm harness binds its agents' sockets to
	 * several loopback source addresses here; the agent itself sets none. */
	int (*socket)(void *arg, int fd);
	/* The key socket listens (the agent tells systemd READY=1, so that systemd-cryptsetup,
	 * ordered after it, finds the socket). */
	void (*ready)(void *arg);
	void *arg;
};

/* One attempt as a callback, so tests can drive the loop without a network. */
typedef int (*tdc_agent_attempt_fn)(void *arg, size_t broker, int64_t deadline_ms,
				    struct tdc_agent_reply *reply, struct tdc_error *e);

/*
 * Tries the brokers in order, round after round, with tdc_backoff_delay
 * between rounds, until one releases the key or the total deadline passes.
 * A broker that denies (stop) or fails its identity check is not tried again.
 * Returns a tdc_agent_exit code; on TDC_AGENT_EXIT_OK, reply holds the key.
 * On DENIED, reply->error holds the last reason code.
 */
int tdc_agent_fetch(const struct tdc_agent_config *c, const struct tdc_agent_clock *clk,
		    tdc_agent_attempt_fn attempt, void *arg, const struct tdc_agent_events *ev,
		    struct tdc_agent_reply *reply);

/* ---- LUKS2 header (docs/LUKS-HEADER.md) ---- */

/* SHA-256 over both LUKS2 binary headers and JSON areas, [0, 2 * hdr_size). */
int tdc_luks_header_digest(const char *device, uint8_t out[32], struct tdc_error *e) TDC_MUST_USE;

struct crypt_device;
/*
 * Validates the header of device for unlocking through keyslot: digest equal to
 * expected, loaded metadata equal to the digested bytes, then the structure
 * rules. On success *cd is the loaded device to activate (crypt_free it).
 * Digest mismatch: TDC_E_BINDING; a structure rule: TDC_E_POLICY (reason names
 * the rule); not LUKS2 / unreadable: TDC_E_FORMAT / TDC_E_IO.
 */
int tdc_luks_validate(const char *device, const uint8_t expected[32], int keyslot,
		      struct crypt_device **cd, struct tdc_error *e) TDC_MUST_USE;
/* For systemd-cryptsetup's header=: copies [0, data_offset) of device into a new file path
 * (0600), after checking again that the SHA-256 of [0, 2 * hdr_size) is expected, so that the
 * metadata it loads are the checked bytes and not a second read of the host's disk. */
int tdc_luks_header_copy(const char *device, const uint8_t expected[32], uint64_t data_offset,
			 const char *path, struct tdc_error *e) TDC_MUST_USE;
/* crypt_activate_by_passphrase(cd, name, keyslot, key); name NULL only checks
 * the key. Wrong key: TDC_E_SIGNATURE. */
int tdc_luks_activate(struct crypt_device *cd, const char *name, int keyslot, const uint8_t *key,
		      size_t key_len, struct tdc_error *e) TDC_MUST_USE;

/* ---- the clevis pin "tdcrypt" (lib/agent/clevis.c, docs/ARCHITECTURE.md) ---- */

#define TDC_CLEVIS_MAX_JWE (64u * 1024u)
#define TDC_CLEVIS_MAX_HEADER (8u * 1024u)
#define TDC_CLEVIS_MAX_PLAINTEXT (16u * 1024u)
/* HKDF info: the JWE key is never the secret itself, whatever else the secret opens */
#define TDC_CLEVIS_INFO "tdcrypt clevis pin v1 A256GCM"

/* The pin's config {"broker": "H:P" | [..], "pin": HEX64 | [..], "secret": ID} into c's
 * brokers, pins and secret_id; unknown members are refused. */
int tdc_clevis_config_parse(const char *json, size_t len, struct tdc_agent_config *c,
			    struct tdc_error *e) TDC_MUST_USE;
/* A compact JWE of pt under HKDF(key, random salt): its header carries c's brokers, pins,
 * secret ID and the salt, nothing else (malloc'd, NUL-terminated). */
int tdc_clevis_encrypt(const struct tdc_agent_config *c, const uint8_t *key, size_t key_len,
		       const uint8_t *pt, size_t pt_len, char **jwe, struct tdc_error *e)
	TDC_MUST_USE;
/* The brokers, pins and secret ID that a JWE's header names, into c (untrusted input). */
int tdc_clevis_header(const char *jwe, size_t len, struct tdc_agent_config *c,
		      struct tdc_error *e) TDC_MUST_USE;
/* The plaintext of a JWE under key (locked memory, tdc_secret_free); an altered JWE or
 * another secret is TDC_E_CRYPTO. */
int tdc_clevis_decrypt(const char *jwe, size_t len, const uint8_t *key, size_t key_len,
		       struct tdc_secret *pt, struct tdc_error *e) TDC_MUST_USE;

/* ---- the key for systemd-cryptsetup (crypttab key file = AF_UNIX socket) ---- */

/* Listens on path (its directory is created 0700 or must be ours and 0700; a stale socket is
 * replaced); the socket is 0600. *fd is -1 on failure, which leaves no socket behind. */
int tdc_keysock_listen(const char *path, int *fd, struct tdc_error *e) TDC_MUST_USE;
struct tdc_keysock_peer {
	unsigned uid;	    /* SO_PEERCRED uid the peer must have (0: root) */
	const char *volume; /* the peer's abstract address must be systemd-cryptsetup's
			     * "@<hex>/cryptsetup/<volume>"; NULL: any address */
};
/* Accepts until a peer passes both checks, sends it the key, closes; refused peers get nothing
 * (closed) and the wait goes on until deadline (clk's milliseconds). 0 once sent. */
int tdc_keysock_serve(int fd, const char *path, const struct tdc_keysock_peer *want,
		      const uint8_t *key, size_t key_len, const struct tdc_agent_clock *clk,
		      int64_t deadline, const struct tdc_agent_events *ev,
		      struct tdc_error *e) TDC_MUST_USE;
/* Closes fd (if >= 0) and removes the socket file. */
void tdc_keysock_close(int fd, const char *path);
struct tdc_agent_config;
/* The checked header's copy next to the socket: "<socket's directory>/<volume>.header". */
int tdc_keysock_header_path(const char *sock, const char *volume, char *buf, size_t cap,
			    struct tdc_error *e) TDC_MUST_USE;
/* The initramfs's /etc/crypttab line for c's volume with sock as its key file and the header
 * copy (tdc_keysock_header_path) as header= (headless, one try, c's keyslot),
 * newline-terminated. TDC_E_FORMAT if a field is not one plain word. */
int tdc_keysock_crypttab_line(const struct tdc_agent_config *c, const char *sock, char *buf,
			      size_t cap, struct tdc_error *e) TDC_MUST_USE;

/* ---- the whole agent ---- */

struct tdc_agent_run_opts {
	bool no_activate; /* validate and check the key, map nothing */
	/* systemd-cryptsetup maps the root: validate, check the key, then serve it once on this
	 * socket (crypttab's key file) instead of mapping */
	const char *serve_socket;
};
/* The key alone: a fresh RA-TLS key, its quote, the certificate and the fetch from the
 * brokers (tdc_agent_fetch). Returns tdc_agent_exit; on TDC_AGENT_EXIT_OK reply->key is
 * the secret (the caller frees reply). The clevis pin and tdc_agent_run use it. */
int tdc_agent_get_key(const struct tdc_agent_config *c, const struct tdc_agent_clock *clk,
		      const struct tdc_agent_events *ev, struct tdc_agent_reply *reply);
/* Header check, key, quote, certificate, key fetch, unlock. Returns tdc_agent_exit. */
int tdc_agent_run(const struct tdc_agent_config *c, const struct tdc_agent_run_opts *o,
		  const struct tdc_agent_clock *clk, const struct tdc_agent_events *ev);
