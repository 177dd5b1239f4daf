#!/usr/bin/env bash
# R8: soak. POST /v1/decisions over HTTP on loopback (SQLite, durable audit
# on), the same setup and concurrency as bench/http.sh. First the capacity:
# CAPACITY_DURATION of unlimited load. Then half that rate for SOAK_MINUTES
# consecutive one-minute runs, printing each minute's achieved rate, p50,
# p99, errors (non-2xx answers and failed requests) and the server's resident
# memory (VmRSS). At the end, one PASS/MISS line a target:
#   errors      no error in the whole run
#   memory      VmRSS at the end <= 1.10 x VmRSS at the end of minute 1
#               (minute 1 is the warm-up)
#   p99 flat    the last minute's p99 <= 2 x the median of the minutes' p99
#   audit       decision events in the audit log == 2xx answers (capacity
#               run included), and GET /v1/audit/verify says ok
# Exits 1 on any error, a lost audit record or a broken chain; a memory or
# p99 MISS is reported, not fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_MINUTES="${SOAK_MINUTES:-10}"
CONNS="${CONNS:-64}"
CAPACITY_DURATION="${CAPACITY_DURATION:-15s}"
# One token for the whole run, at the longest TTL a manifest may ask for.
[ "$SOAK_MINUTES" -le 55 ] || { echo "SOAK_MINUTES at most 55 (the token lives 1h)" >&2; exit 1; }

# shellcheck source=bench/lib/server.sh
source bench/lib/server.sh
bench_tools
cargo build --release -q -p bridle

bench_serve
bench_wait "$B/healthz"
bench_owner
sed -e "s/^owner: bob/owner: owner/" -e "s/^  token_ttl: 10m$/  token_ttl: 1h/" examples/swe-bot.yaml >"$WORK/agent.yaml"
grep -q '^  token_ttl: 1h$' "$WORK/agent.yaml" || { echo "examples/swe-bot.yaml: no token_ttl: 10m to raise to 1h" >&2; exit 1; }
TOKEN="$(bench_agent_token swe-bot "$WORK/agent.yaml")"
# An allowed action: no approval, rate limit or budget in the way.
BODY='{"action":"ci.run_tests","args":{"suite":"unit"}}'

# -w: requests in flight at the deadline are answered and counted, not
# dropped, so every audit record has its answer on this side.
load() {
  oha -c "$CONNS" -w --no-tui --output-format json -m POST \
    -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$BODY" "$@" "$B/v1/decisions"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$BRIDLE_PID/status"; }
# requests/s, p50 ms, p99 ms, 2xx, errors (non-2xx and failed requests)
stats() {
  jq -r '[.summary.requestsPerSec,
          (.latencyPercentiles.p50 // 0) * 1000, (.latencyPercentiles.p99 // 0) * 1000,
          ([.statusCodeDistribution | to_entries[] | select(.key | startswith("2")) | .value] | add // 0),
          ([.statusCodeDistribution | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0)
            + ([.errorDistribution | to_entries[] | .value] | add // 0)]
         | @tsv' "$1"
}

RSS0="$(rss_kib)"
load -z "$CAPACITY_DURATION" >"$WORK/capacity.json"
read -r CAP_RPS _ _ _ CAP_ERR < <(stats "$WORK/capacity.json")
QPS="$(python3 -c "print(max(1, int($CAP_RPS / 2)))")"
printf 'capacity: %.0f req/s over %s at %s connections (errors: %s); soak at %s req/s for %s minutes\n' \
  "$CAP_RPS" "$CAPACITY_DURATION" "$CONNS" "$CAP_ERR" "$QPS" "$SOAK_MINUTES"
printf 'VmRSS: %s KiB idle, %s KiB after the capacity run\n' "$RSS0" "$(rss_kib)"
printf '%6s %10s %8s %8s %8s %7s %10s\n' minute 'req/s' 'p50 ms' 'p99 ms' 2xx errors 'RSS MiB'
for m in $(seq "$SOAK_MINUTES"); do
  load -z 60s -q "$QPS" >"$WORK/minute-$m.json"
  rss_kib >"$WORK/minute-$m.rss"
  read -r RPS P50 P99 OK ERR < <(stats "$WORK/minute-$m.json")
  printf '%6s %10.0f %8.2f %8.2f %8s %7s %10.1f\n' "$m" "$RPS" "$P50" "$P99" "$OK" "$ERR" "$(python3 -c "print($(cat "$WORK/minute-$m.rss") / 1024)")"
done

DECISIONS="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM audit_events WHERE type = ?", ("decision",)).fetchone()[0])' "$WORK/bench.db")"
VERIFY="$(curl -sf -H "Authorization: Bearer $ADMIN" "$B/v1/audit/verify")"
echo "audit chain after the run: $VERIFY"

python3 - "$WORK" "$SOAK_MINUTES" "$QPS" "$DECISIONS" "$(jq -r .ok <<<"$VERIFY")" <<'PY'
import json, statistics, sys
work, minutes, qps, decisions, chain_ok = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "true"

def load(name):
    with open(f"{work}/{name}.json") as f:
        r = json.load(f)
    codes = r.get("statusCodeDistribution") or {}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    err = sum(v for k, v in codes.items() if not k.startswith("2")) + sum((r.get("errorDistribution") or {}).values())
    return r, ok, err

runs = [load("capacity")] + [load(f"minute-{m}") for m in range(1, minutes + 1)]
ok = sum(r[1] for r in runs)
errors = sum(r[2] for r in runs)
rss = [int(open(f"{work}/minute-{m}.rss").read()) for m in range(1, minutes + 1)]
p99 = [(r[0]["latencyPercentiles"]["p99"] or 0) * 1000 for r in runs[1:]]
rates = [r[0]["summary"]["requestsPerSec"] for r in runs[1:]]
verdict = lambda b: "PASS" if b else "MISS"

print(f"achieved rate: {min(rates):.0f} to {max(rates):.0f} req/s (asked {qps})")
print(f"errors:   {errors} in {ok + errors} requests (target 0)  {verdict(errors == 0)}")
growth = (rss[-1] - rss[0]) / rss[0]
print(f"memory:   VmRSS {rss[0] / 1024:.1f} MiB after minute 1, {rss[-1] / 1024:.1f} MiB at the end, "
      f"peak {max(rss) / 1024:.1f} MiB: {growth:+.1%} (target <= +10%)  {verdict(growth <= 0.10)}")
med = statistics.median(p99)
print(f"p99 flat: last minute {p99[-1]:.2f} ms, median of the minutes {med:.2f} ms, "
      f"range {min(p99):.2f} to {max(p99):.2f} ms (target: last <= 2 x median)  {verdict(p99[-1] <= 2 * med)}")
lost = ok - decisions
print(f"audit:    {decisions} decision events for {ok} 2xx answers ({lost} lost), chain "
      f"{'verifies' if chain_ok else 'BROKEN'}  {verdict(lost == 0 and chain_ok)}")
sys.exit(0 if errors == 0 and lost == 0 and chain_ok else 1)
PY
