#!/usr/bin/env bash
# P4: POST /v1/decisions over HTTP on loopback (SQLite, durable audit on)
# against a bare axum "hello" endpoint, with the same load tool in one run.
# Prints throughput of both, their ratio (target >= 30%), and p99 of decisions
# at half the measured decision throughput (target <= 5 ms). A third arm
# decides for an agent with a rate limit and a budget (checked and recorded
# in the store with the audit record): its cost per decision against the
# plain arm's (target <= 1.5x).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"

# shellcheck source=bench/lib/server.sh
source bench/lib/server.sh
bench_tools
cargo build --release -q -p bridle
cargo build --release -q -p bridle-server --example hello

bench_serve
HELLO_PORT="$(free_port)"
target/release/examples/hello "127.0.0.1:$HELLO_PORT" & HELLO_PID=$!
BENCH_PIDS+=("$HELLO_PID")
bench_wait "$B/healthz" "http://127.0.0.1:$HELLO_PORT/"

bench_owner
sed "s/^owner: bob/owner: owner/" examples/swe-bot.yaml >"$WORK/agent.yaml"
TOKEN="$(bench_agent_token swe-bot "$WORK/agent.yaml")"
# An allowed action: no approval, rate limit or budget in the way.
BODY='{"action":"ci.run_tests","args":{"suite":"unit"}}'
# The budgeted arm: a rate limit and a budget neither run can exhaust.
cat >"$WORK/spender.yaml" <<'YAML'
agent: spend-bot
owner: owner
team: finance
purpose: Pay within a budget
environment: prod
expires: 2099-12-31
tools:
  - name: pay
    args:
      amount: { min: 1, max: 1000 }
limits:
  rate: 100000000/min
  budgets:
    - { arg: amount, max: 1000000000000, per: 30d }
YAML
STOKEN="$(bench_agent_token spend-bot "$WORK/spender.yaml")"
SBODY='{"action":"pay","args":{"amount":1}}'

rps() { jq -r '.summary.requestsPerSec'; }
p99() { jq -r '.latencyPercentiles.p99'; }

HELLO="$(oha -z "$DURATION" -c "$CONNS" --no-tui --output-format json "http://127.0.0.1:$HELLO_PORT/")"
DEC="$(oha -z "$DURATION" -c "$CONNS" --no-tui --output-format json -m POST \
  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$BODY" "$B/v1/decisions")"
HELLO_RPS="$(rps <<<"$HELLO")"; DEC_RPS="$(rps <<<"$DEC")"
HALF="$(python3 -c "print(max(1, int($DEC_RPS / 2)))")"
HALFRUN="$(oha -z "$DURATION" -c "$CONNS" -q "$HALF" --no-tui --output-format json -m POST \
  -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$BODY" "$B/v1/decisions")"
P99_MS="$(python3 -c "print(round($(p99 <<<"$HALFRUN") * 1000, 2))")"
ERRORS="$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0' <<<"$DEC")"
BUD="$(oha -z "$DURATION" -c "$CONNS" --no-tui --output-format json -m POST \
  -H "Authorization: Bearer $STOKEN" -H 'content-type: application/json' -d "$SBODY" "$B/v1/decisions")"
BUD_RPS="$(rps <<<"$BUD")"
BHALF="$(python3 -c "print(max(1, int($BUD_RPS / 2)))")"
BHALFRUN="$(oha -z "$DURATION" -c "$CONNS" -q "$BHALF" --no-tui --output-format json -m POST \
  -H "Authorization: Bearer $STOKEN" -H 'content-type: application/json' -d "$SBODY" "$B/v1/decisions")"
BP99_MS="$(python3 -c "print(round($(p99 <<<"$BHALFRUN") * 1000, 2))")"
BERRORS="$(jq -r '[.statusCodeDistribution | to_entries[] | select(.key != "200") | .value] | add // 0' <<<"$BUD")"

python3 - "$HELLO_RPS" "$DEC_RPS" "$HALF" "$P99_MS" "$ERRORS" "$BUD_RPS" "$BHALF" "$BP99_MS" "$BERRORS" <<'PY'
import sys
hello, dec, half, p99, errors = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
bud, bhalf, bp99, berrors = float(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8]), sys.argv[9]
ratio = dec / hello
print(f"hello (bare axum):           {hello:10.0f} req/s")
print(f"POST /v1/decisions (audited): {dec:10.0f} req/s   non-200 responses: {errors}")
print(f"ratio decisions / hello:      {ratio:10.1%}   (target >= 30%: {'met' if ratio >= 0.30 else 'MISSED'})")
print(f"p99 at {half} req/s (half):   {p99:10.2f} ms  (target <= 5 ms: {'met' if p99 <= 5 else 'MISSED'})")
cost = dec / bud
print(f"budgeted decisions:           {bud:10.0f} req/s   non-200 responses: {berrors}")
print(f"cost budgeted / plain:        {cost:10.2f}x  (target <= 1.5x: {'met' if cost <= 1.5 else 'MISSED'})")
print(f"budgeted p99 at {bhalf} req/s: {bp99:10.2f} ms")
PY
VERIFY="$(curl -sf -H "Authorization: Bearer $ADMIN" "$B/v1/audit/verify")"
echo "audit chain after the run: $VERIFY"
