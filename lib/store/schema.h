/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/store (and its tests): schema versions and forward migrations. */
#pragma once

#include "store/db.h"
#include "tdcrypt/error.h"

/* The schema version of d (0: none yet). */
int tdc_store_user_version(struct db *d, int *version, struct tdc_error *e) TDC_MUST_USE;

/*
 * Migrates d from its current version up to target (<= TDC_STORE_SCHEMA_VERSION),
 * each step in its own write transaction that takes the migration lock and re-reads
 * the version first, so concurrent openers (brokers sharing a PostgreSQL database, or
 * processes on one SQLite file) do not run a step twice. A database newer than this
 * code is TDC_E_UNSUPPORTED.
 */
int tdc_store_migrate(struct db *d, int target, struct tdc_error *e) TDC_MUST_USE;
