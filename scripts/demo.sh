#!/usr/bin/env bash
# The main job, end to end, on this kind of machine (Debian 12, root, no TDX):
# installs what it needs, builds tdcrypt, builds (or reuses) a small Debian 12 guest,
# creates a simulator PKI, starts tdcrypt-kbs on 127.0.0.1 with its embedded SQLite
# store, encrypts the guest with `tdcrypt image encrypt` (key registered with the
# broker, policy pinned to the guest's measurements), boots it under QEMU (TCG) with
# the quote simulator, and shows the unlock; then shows the broker refusing the same
# guest booted with a changed kernel command line.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./scripts/e2e.sh --only happy --only cmdline --keep "$@"
