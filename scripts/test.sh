#!/usr/bin/env bash
# Runs Bridle's whole test suite on a fresh machine: installs what the tests
# need (a throwaway PostgreSQL cluster for the storage suite), then runs every
# test of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh

cargo test --workspace --all-targets --locked
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked
