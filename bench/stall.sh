#!/usr/bin/env bash
# R9 (no stall): while the largest manifests the bounds allow are applied in
# a loop, other callers' decisions must not wait on them. Measures
# POST /v1/decisions latency (p50, p99, max) with nothing else running, then
# again while one client applies a maximal manifest (500 grants, each with a
# `when` and an `approval.when`, ~250 KiB) back to back, and prints both and
# the p99 difference (target: under 100 ms). Both arms run in one script on
# one server (release build, SQLite, durable audit on).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_ARM="${SECONDS_PER_ARM:-20}"
CLIENTS="${CLIENTS:-4}"

command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
cargo build --release -q -p bridle

WORK="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
ADMIN="bench-admin-$(date +%s)"
# Change control off: the benchmark measures decisions, not the second
# person that would approve its prod agent.
BRIDLE_CHANGE_CONTROL_ENVIRONMENTS= BRIDLE_ADMIN_TOKEN="$ADMIN" target/release/bridle serve --listen "127.0.0.1:$PORT" --db "sqlite://$WORK/bench.db" >"$WORK/serve.log" 2>&1 & BRIDLE_PID=$!
trap 'kill $BRIDLE_PID 2>/dev/null; rm -rf "$WORK"' EXIT

B="http://127.0.0.1:$PORT"
for _ in $(seq 600); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.05; done

curl -sf -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
  -d '{"id":"owner"}' "$B/v1/principals" >/dev/null
sed "s/^owner: bob/owner: owner/" examples/swe-bot.yaml >"$WORK/agent.yaml"
curl -sf -X PUT -H "Authorization: Bearer $ADMIN" -H 'content-type: application/yaml' \
  --data-binary @"$WORK/agent.yaml" "$B/v1/agents/swe-bot" >/dev/null
CRED="$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{}' "$B/v1/agents/swe-bot/credentials")"
CID="$(jq -r .client_id <<<"$CRED")"; SECRET="$(jq -r .client_secret <<<"$CRED")"
TOKEN="$(curl -sf -u "$CID:$SECRET" -d grant_type=client_credentials "$B/oauth/token" | jq -r .access_token)"

python3 - "$B" "$ADMIN" "$TOKEN" "$SECONDS_PER_ARM" "$CLIENTS" <<'PY'
import http.client, json, sys, threading, time, urllib.parse

base, admin, token, seconds, clients = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
url = urllib.parse.urlparse(base)
MAX_BYTES, MAX_GRANTS = 256 * 1024, 500

def big_manifest(version):
    head = (f"agent: heavy-bot\nowner: owner\npurpose: Largest manifest the bounds allow (v{version})\n"
            "environment: dev\nexpires: 2099-12-31\ntools:\n")
    cond = " && ".join(f"(context.args.amount > {i} || context.args.vendor == \"v{i}\")" for i in range(12))
    grants = []
    for i in range(MAX_GRANTS):
        grants.append(
            f"  - name: svc{i}.op_*\n    access: write\n"
            f"    args: {{ amount: {{ min: 1, max: 100000 }}, vendor: {{ in: [a, b, c] }} }}\n"
            f"    when: '{cond}'\n"
            f"    approval: {{ when: 'context.args.amount > {i + 5000}', approvers: [owner] }}\n")
    text = head + "".join(grants)
    while len(text.encode()) > MAX_BYTES:
        grants.pop()
        text = head + "".join(grants)
    return text

def conn():
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)

body = json.dumps({"action": "ci.run_tests", "args": {"suite": "unit"}})
def decider(stop, out):
    c = conn()
    while not stop.is_set():
        t = time.perf_counter()
        c.request("POST", "/v1/decisions", body, {"Authorization": f"Bearer {token}", "content-type": "application/json"})
        r = c.getresponse(); r.read()
        out.append((time.perf_counter() - t, r.status))

def applier(stop, out):
    c = conn()
    v = 0
    while not stop.is_set():
        v += 1
        m = big_manifest(v)
        t = time.perf_counter()
        c.request("PUT", "/v1/agents/heavy-bot", m, {"Authorization": f"Bearer {admin}", "content-type": "application/yaml"})
        r = c.getresponse(); r.read()
        out.append((time.perf_counter() - t, r.status, len(m)))

def arm(with_applier):
    stop = threading.Event()
    lat, applies = [], []
    threads = [threading.Thread(target=decider, args=(stop, lat)) for _ in range(clients)]
    if with_applier:
        threads.append(threading.Thread(target=applier, args=(stop, applies)))
    for t in threads: t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads: t.join()
    ms = sorted(l * 1000 for l, _ in lat)
    bad = sum(1 for _, s in lat if s != 200)
    q = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))]
    return {"n": len(ms), "p50": q(0.50), "p99": q(0.99), "max": ms[-1], "non200": bad}, applies

quiet, _ = arm(False)
loaded, applies = arm(True)
ok = [a for a in applies if a[1] in (200, 201)]
print(f"decisions alone:            n={quiet['n']:6d}  p50={quiet['p50']:7.2f} ms  p99={quiet['p99']:7.2f} ms  max={quiet['max']:7.2f} ms  non-200={quiet['non200']}")
print(f"decisions during applies:   n={loaded['n']:6d}  p50={loaded['p50']:7.2f} ms  p99={loaded['p99']:7.2f} ms  max={loaded['max']:7.2f} ms  non-200={loaded['non200']}")
if ok:
    mean = sum(a[0] for a in ok) / len(ok)
    print(f"maximal applies:            n={len(ok):6d}  ({ok[0][2]} bytes, {len(applies) - len(ok)} refused)  mean {mean * 1000:.0f} ms each")
else:
    print(f"maximal applies: none succeeded: {applies[:1]}")
delta = loaded["p99"] - quiet["p99"]
print(f"p99 difference:             {delta:7.2f} ms  (target < 100 ms: {'met' if delta < 100 else 'MISSED'})")
PY
