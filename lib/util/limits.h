/* SPDX-License-Identifier: Apache-2.0 */
/* Every size cap on untrusted input, in one place. Each has a test one past it. */
#pragma once

/* A TDX quote, including trailing padding (the kernel's outblob cap is 32 KiB). */
#define TDC_MAX_QUOTE_SIZE (64u * 1024u)
/* The PCK certificate chain PEM inside a quote. */
#define TDC_MAX_PCK_CHAIN_SIZE (16u * 1024u)
/* QE authentication data inside a quote. */
#define TDC_MAX_QE_AUTH_DATA 4096u
/* A TCB info or QE identity JSON document (PCS bodies are a few KiB). */
#define TDC_MAX_COLLATERAL_JSON (256u * 1024u)
/* A CRL (the PCK Platform CA CRL holds a few dozen serials, about 3 KiB). */
#define TDC_MAX_CRL_SIZE (1024u * 1024u)
/* An issuer chain PEM. */
#define TDC_MAX_CHAIN_PEM (32u * 1024u)
/* A collateral bundle file (dcap-qvl JSON). */
#define TDC_MAX_BUNDLE_FILE (2u * 1024u * 1024u)
/* Certificates in one chain. */
#define TDC_MAX_CHAIN_CERTS 4
/* TCB levels in a TCB info / QE identity / module identity. */
#define TDC_MAX_TCB_LEVELS 256
/* TDX module identities in a TCB info. */
#define TDC_MAX_MODULE_IDENTITIES 16
/* Advisory IDs on one level, and the length of one ID. */
#define TDC_MAX_ADVISORIES 64
#define TDC_MAX_ADVISORY_LEN 31
/* JSON nesting depth accepted by the collateral parser. */
#define TDC_MAX_JSON_DEPTH 16
/* The RA-TLS evidence extension value (CBOR), its claims-buffer, claim count and key length. */
#define TDC_MAX_RATLS_EXT_SIZE (TDC_MAX_QUOTE_SIZE + 1024u)
#define TDC_MAX_RATLS_CLAIMS_SIZE 512u
#define TDC_MAX_RATLS_CLAIMS 16u
#define TDC_MAX_RATLS_CLAIM_KEY 32u
/* A CC event log in the evidence (the used part of the CCEL area; real ones are 5-40 KiB),
 * and the CCEL log area the agent reads it from. */
#define TDC_MAX_EVENT_LOG (128u * 1024u)
#define TDC_MAX_CCEL_AREA (4u * 1024u * 1024u)
/* Policy JSON document, values in one any-of list, advisory IDs in one policy list. */
#define TDC_MAX_POLICY_JSON (128u * 1024u)
#define TDC_MAX_POLICY_VALUES 64
/* Events listed for one RTMR in a policy. */
#define TDC_MAX_POLICY_EVENTS 256
#define TDC_MAX_POLICY_ADVISORIES 256
/* Store: secret IDs and values, secret.json import, audit fields, collateral cache. */
#define TDC_MAX_SECRET_ID_LEN 128
#define TDC_MAX_SECRET_SIZE 4096u /* PROTOCOL.md: a released key is at most 4096 bytes */
#define TDC_MAX_IMPORT_JSON (1024u * 1024u)
#define TDC_MAX_IMPORT_SECRETS 4096
#define TDC_MAX_AUDIT_FIELD 256
#define TDC_MAX_AUDIT_REASON 2048
#define TDC_MAX_AUDIT_LIST 10000
#define TDC_MAX_CACHE_KEY 256
#define TDC_MAX_CACHE_BODY (4u * 1024u * 1024u)
/* Guest agent: config file, kernel command line, broker reply, released key,
 * QGS message, configfs-tsm attribute, LUKS2 header (both copies). */
#define TDC_MAX_AGENT_CONFIG (64u * 1024u)
#define TDC_MAX_CMDLINE (64u * 1024u)
#define TDC_MAX_HTTP_RESPONSE (16u * 1024u)
#define TDC_MAX_HTTP_HEADERS 32
#define TDC_MAX_RELEASED_KEY 4096u
#define TDC_MAX_QGS_MESSAGE (TDC_MAX_QUOTE_SIZE + 1024u)
#define TDC_MAX_TSM_ATTR 64
#define TDC_MAX_LUKS_HDR_SIZE (4u * 1024u * 1024u)
/* headers + keyslot area copied for systemd-cryptsetup's header= (LUKS2 default: 16 MiB) */
#define TDC_MAX_LUKS_HEADER_COPY (256u * 1024u * 1024u)
/* Key broker: HTTP request line, header block, header fields, body; secret ID,
 * agent name, released secret; requests per connection; client certificate list;
 * admin socket line; a PCCS response body; the config file. */
#define TDC_MAX_HTTP_REQUEST_LINE 1024u
#define TDC_MAX_HTTP_HEADER (8u * 1024u)
#define TDC_MAX_HTTP_FIELDS 32u
/* The body carries the CC event log, base64 (4/3) plus the JSON around it. */
#define TDC_MAX_HTTP_BODY (4u * 1024u + (TDC_MAX_EVENT_LOG / 3u + 1u) * 4u)
#define TDC_MAX_KBS_SECRET_ID 64u
#define TDC_MAX_KBS_AGENT 64u
#define TDC_MAX_KBS_SECRET 4096u
#define TDC_MAX_KBS_REQUESTS_PER_CONN 8u
#define TDC_MAX_KBS_CERT_LIST (80u * 1024u)
#define TDC_MAX_ADMIN_LINE (256u * 1024u)
#define TDC_MAX_PCCS_BODY (1024u * 1024u)
#define TDC_MAX_KBS_CONFIG (64u * 1024u)
/* Image builder: GPT entries and entry size, /etc/os-release, guest text files,
 * the agent binary copied into the guest, a helper tool's captured output. */
#define TDC_MAX_GPT_ENTRIES 1024u
#define TDC_MAX_GPT_ENTRY_SIZE 1024u
#define TDC_MAX_OS_RELEASE (64u * 1024u)
/* Image builder: ext4 metadata rewritten in memory while the input is read in place. */
#define TDC_MAX_EXT4_OVERLAY_BYTES (64u * 1024u * 1024u)
/* Image builder: the guest root's /etc/fstab. */
#define TDC_MAX_FSTAB (1024u * 1024u)
