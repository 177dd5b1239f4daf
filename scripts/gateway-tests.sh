#!/usr/bin/env bash
# The MCP gateway against real clients and servers nobody here wrote (I2):
# the official MCP Python SDK (pinned in scripts/requirements-gateway.txt,
# installed into the project-local .venv) as the agent, through
# `bridle gateway`, to @modelcontextprotocol/server-everything over stdio
# (pinned in tests/mcp/package-lock.json, installed into tests/mcp/node_modules)
# and to tests/mcp/ledger_server.py (a tool whose side effect the test sees;
# also over streamable HTTP, with a key header from `headers_from_env`,
# killed and restarted to check the gateway reconnects),
# in the SDK's default mode (MCP 2026-07-28) and in legacy mode (2025-11-25);
# the official TypeScript SDK client (@modelcontextprotocol/sdk, pinned in
# tests/mcp, tests/mcp/ts_client_test.mjs; 1.x speaks 2025-11-25); then
# `bridle serve --gateway` on an empty database. Then the MCP Inspector's CLI
# (@modelcontextprotocol/inspector, pinned in tests/mcp, on Node 22) in its
# modern (2026-07-28) and legacy (2025-11-25) protocol eras: list, allowed,
# denied, held-then-approved and held-then-abandoned calls
# (tests/mcp/inspector_test.py).
#
#   scripts/gateway-tests.sh
#
# Then the official MCP conformance suite (server scenarios, also pinned in
# tests/mcp, on the Node 22 it needs, from the npm `node` package) against
# the gateway in front of an upstream with the suite's fixtures (I3).
#
# Needs python3 (with venv), node and npm, and the registries the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! .venv/bin/python -c "import mcp" 2>/dev/null ||
    ! .venv/bin/pip freeze 2>/dev/null | grep -qxF -f <(grep -v '^#' scripts/requirements-gateway.txt); then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-gateway.txt
fi
if [ ! -x tests/mcp/node_modules/.bin/mcp-server-everything ] || [ ! -x tests/mcp/node_modules/.bin/conformance ] ||
    [ ! -x tests/mcp/node_modules/.bin/node ] || [ ! -x tests/mcp/node_modules/.bin/mcp-inspector ] ||
    [ ! -f tests/mcp/node_modules/@modelcontextprotocol/sdk/package.json ]; then
    (cd tests/mcp && npm ci --no-audit --no-fund --silent)
fi

cargo build --locked -p bridle
export BRIDLE_BIN="${CARGO_TARGET_DIR:-target}/debug/bridle"
.venv/bin/python tests/mcp/gateway_test.py
# The MCP Inspector's CLI, modern and legacy era, through the gateway.
.venv/bin/python tests/mcp/inspector_test.py
# An MCP client that knows only the interactive OAuth flow, through the
# owner's consent in the console, to the gateway.
.venv/bin/python tests/mcp/oauth_client_test.py
# I3: the official conformance suite, with its expected failures explained in
# tests/mcp/conformance-baseline.yml.
.venv/bin/python tests/mcp/conformance_test.py
