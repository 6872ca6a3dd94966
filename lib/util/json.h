/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict json-c parsing and typed field getters for every JSON reader
 * (collateral, policy, configs, the broker's HTTP and admin bodies).
 * Every getter names the JSON path of the field in its error
 * ("tcbInfo.tcbLevels[3].tcb.pcesvn"), since json-c keeps no offsets.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "tdcrypt/error.h"

/* Longest path we build: "tcbInfo.tdxModuleIdentities[15].tcbLevels[255].advisoryIDs[63]". */
#define TDC_JPATH_MAX 128

/*
 * Parses [buf, len) as exactly one JSON object: strict grammar, nesting at
 * most TDC_MAX_JSON_DEPTH, len <= max, nothing after the closing brace.
 */
int tdc_json_parse_object(const uint8_t *buf, size_t len, size_t max, const char *what,
			  json_object **out, struct tdc_error *e) TDC_MUST_USE;
/* Same, with nesting at most `depth` (a flat document needs 1 or 2). */
int tdc_json_parse_object_depth(const uint8_t *buf, size_t len, size_t max, int depth,
				const char *what, json_object **out, struct tdc_error *e)
	TDC_MUST_USE;

/* Adds v as obj[key]; v NULL (a failed constructor) or a failed add: -1, v released. */
int tdc_json_add(json_object *obj, const char *key, json_object *v);

/* Writes "parent.key" / "parent[i]" into out (TDC_JPATH_MAX bytes). */
void tdc_jpath_key(char *out, const char *parent, const char *key);
void tdc_jpath_idx(char *out, const char *parent, size_t i);

/* Member `key` of obj with JSON type `type`. Absent: error if required,
 * else *val = NULL. A null or mistyped value is always an error. */
int tdc_json_field(json_object *obj, const char *parent, const char *key, json_type type,
		   bool required, json_object **val, struct tdc_error *e) TDC_MUST_USE;

/* Integer member in [min, max]; doubles, strings and booleans are refused. */
int tdc_json_int(json_object *obj, const char *parent, const char *key, int64_t min, int64_t max,
		 int64_t *out, struct tdc_error *e) TDC_MUST_USE;

/* String member without embedded NUL, at most max_len bytes (TDC_E_LIMIT beyond). */
int tdc_json_str(json_object *obj, const char *parent, const char *key, size_t max_len,
		 const char **s, size_t *len, struct tdc_error *e) TDC_MUST_USE;

/* String member copied into a char buffer of cap bytes (including NUL). */
int tdc_json_str_copy(json_object *obj, const char *parent, const char *key, char *out, size_t cap,
		      struct tdc_error *e) TDC_MUST_USE;

/* Hex string member of exactly 2*n digits (either case). */
int tdc_json_hex(json_object *obj, const char *parent, const char *key, uint8_t *out, size_t n,
		 struct tdc_error *e) TDC_MUST_USE;

/* RFC 3339 UTC time member. */
int tdc_json_time(json_object *obj, const char *parent, const char *key, int64_t *out,
		  struct tdc_error *e) TDC_MUST_USE;

/* Array member with min..max elements (fewer: TDC_E_FORMAT, more: TDC_E_LIMIT). */
int tdc_json_array(json_object *obj, const char *parent, const char *key, bool required, size_t min,
		   size_t max, json_object **arr, size_t *n, struct tdc_error *e) TDC_MUST_USE;

