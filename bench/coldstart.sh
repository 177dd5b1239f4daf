#!/usr/bin/env bash
# P9: cold start with AGENTS registered agents (100,000) to a healthy server,
# and resident memory after start and after one decision for each of DECIDED
# different agents (10,000). Release build, embedded SQLite. One agent is
# registered through the API (with a credential); the rest are copies of its
# rows made directly in the database (each with its own id, its manifest's
# `agent` rewritten, and a credential sharing the first one's secret hash),
# which is what a long-running registry holds. Targets: healthy within 5 s,
# RSS <= 1 GiB after start and after the decisions.
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS="${AGENTS:-100000}"
DECIDED="${DECIDED:-10000}"

command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
cargo build --release -q -p bridle
WORK="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
ADMIN="bench-admin-$(date +%s)"
B="http://127.0.0.1:$PORT"
serve() {
  BRIDLE_CHANGE_CONTROL_ENVIRONMENTS= BRIDLE_ADMIN_TOKEN="$ADMIN" target/release/bridle serve \
    --listen "127.0.0.1:$PORT" --db "sqlite://$WORK/bench.db" >>"$WORK/serve.log" 2>&1 &
  PID=$!
}
serve
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 600); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.05; done
curl -sf -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{"id":"owner"}' "$B/v1/principals" >/dev/null
sed "s/^owner: bob/owner: owner/" examples/swe-bot.yaml >"$WORK/agent.yaml"
curl -sf -X PUT -H "Authorization: Bearer $ADMIN" -H 'content-type: application/yaml' \
  --data-binary @"$WORK/agent.yaml" "$B/v1/agents/swe-bot" >/dev/null
CRED="$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{}' "$B/v1/agents/swe-bot/credentials")"
SECRET="$(jq -r .client_secret <<<"$CRED")"; CID="$(jq -r .client_id <<<"$CRED")"
kill "$PID"; wait "$PID" 2>/dev/null || true

python3 - "$WORK/bench.db" "$AGENTS" "$CID" <<'PY'
import sqlite3, sys
db, n, cid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = sqlite3.connect(db)
def cols(t): return [r[1] for r in c.execute(f"PRAGMA table_info({t})")]
def copy(table, key_cols, where):
    cs = cols(table)
    sel = []
    for col in cs:
        if col in key_cols: sel.append(key_cols[col])
        elif col in ("source", "manifest"): sel.append(f"replace({col}, 'swe-bot', :id)")
        else: sel.append(col)
    return f"INSERT INTO {table} ({', '.join(cs)}) SELECT {', '.join(sel)} FROM {table} WHERE {where}"
agents = copy("agents", {"id": ":id"}, "id = 'swe-bot'")
versions = copy("agent_versions", {"agent_id": ":id"}, "agent_id = 'swe-bot'")
creds = copy("agent_credentials", {"client_id": ":id || '.bench'", "agent_id": ":id"}, "client_id = :cid")
with c:
    for i in range(1, n):
        p = {"id": f"agent-{i:06d}", "cid": cid}
        c.execute(agents, p); c.execute(versions, p); c.execute(creds, p)
print(f"agents in the registry: {c.execute('SELECT COUNT(*) FROM agents').fetchone()[0]}")
c.close()
PY

rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$PID/status"; }
T0="$(date +%s.%N)"
serve
for _ in $(seq 2000); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.01; done
T1="$(date +%s.%N)"
START_S="$(python3 -c "print(round($T1 - $T0, 2))")"
RSS_START="$(rss_mib)"

python3 - "$PORT" "$DECIDED" "$SECRET" <<'PY'
import base64, http.client, json, sys, threading
port, n, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def worker(ids, errors):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in ids:
        agent = f"agent-{i:06d}"
        basic = base64.b64encode(f"{agent}.bench:{secret}".encode()).decode()
        c.request("POST", "/oauth/token", body="grant_type=client_credentials",
                  headers={"Authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"})
        r = c.getresponse(); t = json.loads(r.read())
        if r.status != 200: errors.append(t); continue
        c.request("POST", "/v1/decisions", body=json.dumps({"action": "ci.run_tests", "args": {"suite": "unit"}}),
                  headers={"Authorization": f"Bearer {t['access_token']}", "content-type": "application/json"})
        r = c.getresponse(); d = json.loads(r.read())
        if r.status != 200 or d.get("decision") != "allow": errors.append(d)
errors, threads = [], []
for k in range(4):
    t = threading.Thread(target=worker, args=(range(1 + k, n + 1, 4), errors)); t.start(); threads.append(t)
for t in threads: t.join()
print(f"decisions for {n} different agents: {n - len(errors)} allowed, {len(errors)} errors")
if errors: print(errors[:3]); sys.exit(1)
PY
RSS_AFTER="$(rss_mib)"
echo "cold start with $AGENTS agents to a healthy server: ${START_S} s   (target <= 5 s)"
echo "resident memory after start:              ${RSS_START} MiB  (target <= 1024)"
echo "after one decision for each of $DECIDED agents: ${RSS_AFTER} MiB  (target <= 1024)"
