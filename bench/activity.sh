#!/usr/bin/env bash
# Usage of 30 days for one agent of 1,000 at 10 decisions a minute (issue
# "Visibility": < 200 ms), on SQLite and on PostgreSQL, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
export BRIDLE_BENCH_POSTGRES_URL="$BRIDLE_TEST_POSTGRES_URL"
cargo bench -p bridle-store --bench activity
