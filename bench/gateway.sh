#!/usr/bin/env bash
# P7: MCP gateway overhead per `tools/call`. Times `everything.echo` through
# `bridle gateway` (token check, reachability, decision with a durable audit
# record, forwarding; the outcome is reported after the answer) and `echo`
# directly against the same @modelcontextprotocol/server-everything
# (streamable HTTP), alternating batches in one run. Prints p50/p99 of both,
# the ratio, and the added p50/p99 (target: p50 <= 1 ms).
#
#   bench/gateway.sh            # 2000 calls per arm
#   CALLS=5000 bench/gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! .venv/bin/python -c "import mcp" 2>/dev/null; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-gateway.txt
fi
[ -x tests/mcp/node_modules/.bin/mcp-server-everything ] || (cd tests/mcp && npm ci --no-audit --no-fund --silent)
cargo build --release --locked -q -p bridle
BRIDLE_BIN="${CARGO_TARGET_DIR:-target}/release/bridle" .venv/bin/python bench/gateway_bench.py
