/* SPDX-License-Identifier: Apache-2.0 */
/* Private to lib/store (and its tests): schema versions and forward migrations. */
#pragma once

#include <sqlite3.h>

#include "tdcrypt/error.h"

/* PRAGMA user_version of db. */
int tdc_store_user_version(sqlite3 *db, int *version, struct tdc_error *e) TDC_MUST_USE;

/*
 * Migrates db from its current version up to target (<= TDC_STORE_SCHEMA_VERSION),
 * each step in its own IMMEDIATE transaction that re-reads the version first,
 * so concurrent openers do not run a step twice. A database newer than this
 * code is TDC_E_UNSUPPORTED.
 */
int tdc_store_migrate(sqlite3 *db, int target, struct tdc_error *e) TDC_MUST_USE;
