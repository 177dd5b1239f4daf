#!/usr/bin/env bash
# Runs Bridle's whole test suite on a fresh machine: installs what the tests
# need (a throwaway PostgreSQL cluster for the storage and API suites,
# schemathesis in a project-local .venv), then runs every test of every crate
# and the OpenAPI fuzz pass.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh

cargo test --workspace --all-targets --locked
# Doc tests are not part of --all-targets.
cargo test --workspace --doc --locked
# R4: schemathesis against /openapi.json of a running server (no 5xx, every
# response matches its schema).
scripts/schemathesis.sh
# I2: the MCP gateway with the official Python SDK and a real MCP server.
scripts/gateway-tests.sh
