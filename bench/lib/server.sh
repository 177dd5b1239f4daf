# shellcheck shell=bash
# Sourced by the HTTP benchmarks (bench/http.sh, bench/soak.sh), from the
# repository root: the load tools, a release `bridle serve` on a throwaway
# SQLite database with an admin token, and agents with a client-credentials
# token each.
#
#   bench_tools                   oha (crates.io) and jq (apt) if missing
#   bench_serve                   start the server (BRIDLE_BIN, default the release
#                                 build, to compare another build); sets WORK, ADMIN, BRIDLE_PORT,
#                                 BRIDLE_PID and B (its base URL); an EXIT trap
#                                 kills BENCH_PIDS and removes WORK
#   bench_wait URL...             until every URL answers (about 30 s at most)
#   bench_owner                   the principal `owner` the agents belong to
#   bench_agent_token NAME FILE   PUT manifest FILE as agent NAME, create a
#                                 credential, print an access token for it

bench_tools() {
  command -v oha >/dev/null || cargo install oha --locked
  command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

BENCH_PIDS=()
bench_cleanup() {
  if [ "${#BENCH_PIDS[@]}" -gt 0 ]; then kill "${BENCH_PIDS[@]}" 2>/dev/null || true; fi
  rm -rf "$WORK"
}

bench_serve() {
  WORK="$(mktemp -d)"
  BRIDLE_PORT="$(free_port)"
  ADMIN="bench-admin-$(date +%s)"
  # Change control off: the benchmarks measure decisions, not the second
  # person that would approve their prod agents.
  BRIDLE_CHANGE_CONTROL_ENVIRONMENTS= BRIDLE_ADMIN_TOKEN="$ADMIN" "${BRIDLE_BIN:-target/release/bridle}" serve --listen "127.0.0.1:$BRIDLE_PORT" --db "sqlite://$WORK/bench.db" >"$WORK/serve.log" 2>&1 & BRIDLE_PID=$!
  BENCH_PIDS+=("$BRIDLE_PID")
  trap bench_cleanup EXIT
  B="http://127.0.0.1:$BRIDLE_PORT"
}

bench_wait() {
  local url ok
  for _ in $(seq 600); do
    ok=1
    for url in "$@"; do curl -sf "$url" >/dev/null || { ok=0; break; }; done
    [ "$ok" = 1 ] && return 0
    sleep 0.05
  done
}

bench_owner() {
  curl -sf -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    -d '{"id":"owner"}' "$B/v1/principals" >/dev/null
}

bench_agent_token() {
  local name="$1" file="$2" cred
  curl -sf -X PUT -H "Authorization: Bearer $ADMIN" -H 'content-type: application/yaml' \
    --data-binary @"$file" "$B/v1/agents/$name" >/dev/null || return
  cred="$(curl -sf -X POST -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' -d '{}' "$B/v1/agents/$name/credentials")" || return
  curl -sf -u "$(jq -r .client_id <<<"$cred"):$(jq -r .client_secret <<<"$cred")" -d grant_type=client_credentials "$B/oauth/token" | jq -r .access_token
}
