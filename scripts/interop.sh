#!/usr/bin/env bash
# I1: OAuth interoperability with clients nobody here wrote. Starts
# `bridle demo` on a free loopback port with a throwaway database, then drives
# it with standard, unmodified clients:
#
#   - Python (tests/oauth/test_*.py, pytest): authlib client credentials
#     (client_secret_basic, client_secret_post), token exchange, private_key_jwt,
#     introspection and revocation, secret rotation, and the interactive
#     authorization code grant with PKCE (S256) for a client identified by
#     its client metadata document, alice consenting in the console;
#     PyJWT's PyJWKClient verifying access tokens across a signing-key
#     rotation.
#   - Node (tests/oauth/oauth4webapi.test.mjs, node:test): oauth4webapi
#     discovery, client credentials, token exchange, private_key_jwt,
#     introspection, revocation, and DPoP-bound tokens at /v1/decisions.
#
# Exits non-zero if any test fails. About 10 s once the dependencies are in.
#
#   scripts/interop.sh                          # build if needed, run, clean up
#   BRIDLE_BIN=/path/to/bridle scripts/interop.sh  # use that binary, no build
#   PYTEST_ARGS="-k rotation" scripts/interop.sh   # a subset of the Python tests
#
# Needs python3 (with venv), node 20+ and npm, and network access to PyPI and
# the npm registry the first time: the pinned Python clients go into the
# project-local `.venv` (scripts/requirements-oauth.txt), the Node client into
# tests/oauth/node_modules (npm ci from tests/oauth/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BRIDLE_BIN:-target/debug/bridle}
REQUIREMENTS=scripts/requirements-oauth.txt
NODE_DIR=tests/oauth

for tool in python3 node npm curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "interop: \`$tool\` is not installed" >&2
        exit 1
    fi
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
    echo "interop: node 20 or newer is needed, found $(node --version)" >&2
    exit 1
fi

# The pinned Python clients, once per change of the requirements file.
stamp=.venv/.requirements-oauth.txt
if ! [[ -x .venv/bin/python ]] || ! cmp -s "$REQUIREMENTS" "$stamp"; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$stamp"
fi

# The pinned Node client, once per change of the lockfile.
node_stamp=$NODE_DIR/node_modules/.interop-package-lock.json
if ! cmp -s "$NODE_DIR/package-lock.json" "$node_stamp"; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$NODE_DIR/package-lock.json" "$node_stamp"
fi

if [[ -z "${BRIDLE_BIN:-}" ]]; then
    cargo build --quiet --locked -p bridle
fi

# shellcheck source=scripts/lib/demo.sh
source scripts/lib/demo.sh
start_demo "$BIN"

# The demo's output names the people's keys (the owner who consents).
export BRIDLE_URL=$base BRIDLE_ADMIN_KEY=$key BRIDLE_DEMO_LOG=$work/demo.log
failed=()

echo "=== Python: authlib $(.venv/bin/python -c 'import authlib; print(authlib.__version__)'), PyJWT $(.venv/bin/python -c 'import jwt; print(jwt.__version__)') against $base"
# shellcheck disable=SC2086 # PYTEST_ARGS is a list of options
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout --kill-after=10 120 \
    .venv/bin/python -m pytest -v --color=no tests/oauth ${PYTEST_ARGS:-} || failed+=("Python (authlib, PyJWT)")

echo
echo "=== Node $(node --version): oauth4webapi $(node -p "require('./$NODE_DIR/node_modules/oauth4webapi/package.json').version") against $base"
timeout --kill-after=10 120 \
    node --test --test-reporter=spec "$NODE_DIR/oauth4webapi.test.mjs" || failed+=("Node (oauth4webapi)")

if grep -q 'request failed\|panicked' "$work/demo.log"; then
    echo >&2
    echo "from the server log:" >&2
    grep 'request failed\|panicked' "$work/demo.log" | head -n 20 >&2
fi
echo
if ((${#failed[@]})); then
    printf 'interop FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "interop passed: authlib, PyJWT and oauth4webapi work against Bridle unchanged"
