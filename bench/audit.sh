#!/usr/bin/env bash
# P5: durable audit throughput on SQLite and on PostgreSQL (fsync on), in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
export BRIDLE_PG_FSYNC=on
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
export BRIDLE_BENCH_POSTGRES_URL="$BRIDLE_TEST_POSTGRES_URL"
cargo bench -p bridle-store --bench audit
