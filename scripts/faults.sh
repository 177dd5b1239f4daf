#!/usr/bin/env bash
# R1, R2: durable or refused under real faults. Runs tests/faults/faults.py
# (Python standard library only) against a real `bridle serve`:
#
#   - SQLite in a small loop-mounted ext4 file system: kill -9 under load,
#     the disk filled, the file system turned read-only (an ext4 error:
#     Linux refuses `remount,ro` while files are open for writing), the
#     database files made immutable (chattr +i), an audit insert that fails
#     (a trigger that raises, then dropped);
#   - a throwaway PostgreSQL cluster of its own (scripts/pg-cluster.sh):
#     kill -9 under load, a failing audit insert, PostgreSQL stopped, and
#     PostgreSQL made read-only (default_transaction_read_only).
#
# Each case checks that no answered decision is missing from the audit
# table, that decisions and /healthz are 503 while faulted, that the server
# recovers by itself (the time is printed; > 5 s fails; the read-only file
# system needs a remount, so a restart) and that the chain verifies. Cases that need root (mount, chattr) are reported as SKIPPED,
# never as passed. About two minutes.
#
#   scripts/faults.sh                              # build if needed, run all
#   BRIDLE_BIN=target/release/bridle scripts/faults.sh
#   FAULT_CASES=sqlite_immutable,postgres_stopped scripts/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BRIDLE_BIN:-target/debug/bridle}
if [[ -z "${BRIDLE_BIN:-}" ]]; then
    cargo build --quiet --locked -p bridle
fi
PG_BIN="$(scripts/pg-cluster.sh bin 2>/dev/null || true)"
if [[ "$(id -u)" != 0 ]]; then
    echo "faults: not root: the loop-mounted file system cases will be SKIPPED" >&2
fi
exec python3 tests/faults/faults.py --bin "$BIN" --pg-bin "$PG_BIN" --cases "${FAULT_CASES:-}"
