#!/usr/bin/env bash
# CPU time per decision of two builds of `bridle`, side by side: each binary
# serves a fresh SQLite database (durable audit on) in turn, an agent with an
# approval rule and an elevation decides ACTION under wrk (1 thread, 32
# connections) for DUR, and the server's user+system CPU time is divided by
# the audit events it wrote. Rounds alternate the binaries, so a busy machine
# weighs on both. CPU per decision moves less with other load than
# throughput does.
#
#   bench/cpu-ab.sh OLD_BINARY NEW_BINARY          # ACTION=ping DUR=6s ROUNDS=3
#   ACTION=ci.run_tests bench/cpu-ab.sh A B        # a plain grant of the agent
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/cpu-ab.sh OLD_BINARY NEW_BINARY" >&2; exit 1; }
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
ACTION="${ACTION:-ping}"; DUR="${DUR:-6s}"; ROUNDS="${ROUNDS:-3}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

arm() {
  local bin=$1 work port pid base cred token ticks events
  work="$(mktemp -d)"; port="$(free_port)"; base="http://127.0.0.1:$port"
  BRIDLE_CHANGE_CONTROL_ENVIRONMENTS= BRIDLE_ADMIN_TOKEN=bench-admin "$bin" serve \
    --listen "127.0.0.1:$port" --db "sqlite://$work/bench.db" >"$work/serve.log" 2>&1 & pid=$!
  for _ in $(seq 600); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
  curl -sf -H "Authorization: Bearer bench-admin" -H 'content-type: application/json' \
    -d '{"id":"owner"}' "$base/v1/principals" >/dev/null
  cat >"$work/agent.yaml" <<'YAML'
agent: gate-bot
owner: owner
purpose: Decide under an approval rule and an elevation
environment: dev
expires: 2099-12-31
tools:
  - name: ping
  - name: ci.run_tests
  - name: pay
    args:
      amount: { min: 1, max: 100000 }
    approval:
      when: context.args.amount > 100
      approvers: [owner]
elevation:
  - name: admin
    tools: [admin.*]
    max_duration: 1h
    approvers: [owner]
YAML
  curl -sf -X PUT -H "Authorization: Bearer bench-admin" -H 'content-type: application/yaml' \
    --data-binary @"$work/agent.yaml" "$base/v1/agents/gate-bot" >/dev/null
  cred="$(curl -sf -X POST -H "Authorization: Bearer bench-admin" -H 'content-type: application/json' -d '{}' "$base/v1/agents/gate-bot/credentials")"
  token="$(curl -sf -u "$(jq -r .client_id <<<"$cred"):$(jq -r .client_secret <<<"$cred")" -d grant_type=client_credentials "$base/oauth/token" | jq -r .access_token)"
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '{"action":"$ACTION","args":{}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
  local rps
  rps="$(wrk -t1 -c32 -d"$DUR" -s "$work/post.lua" "$base/v1/decisions" | awk '/Requests\/sec/ {print $2}')"
  ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
  events="$(curl -sf -H "Authorization: Bearer bench-admin" "$base/v1/audit/verify" | jq -r 'if .ok then .events else error("chain broken") end')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$work"
  python3 -c "import os,sys; t=int(sys.argv[2])/os.sysconf('SC_CLK_TCK'); print(f'{sys.argv[1]}: {float(sys.argv[4]):8.0f} req/s  {t*1e6/int(sys.argv[3]):6.0f} us CPU per decision ({sys.argv[3]} audited)')" "$bin" "$ticks" "$events" "$rps"
}
for _ in $(seq "$ROUNDS"); do arm "$1"; arm "$2"; done
