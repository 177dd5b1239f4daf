#!/usr/bin/env bash
# `GET /metrics` read by the official Prometheus Python parser. Starts
# `bridle serve` on a free loopback port with a throwaway SQLite database and
# a metrics token, then runs tests/metrics/scrape.py: an agent, a few
# decisions, a scrape parsed by `prometheus_client.parser` (pinned in
# scripts/requirements-metrics.txt, in the project-local .venv), every
# family and count checked. Exits non-zero on any failure. A few seconds.
#
#   scripts/metrics.sh                          # build if needed, run, clean up
#   BRIDLE_BIN=/path/to/bridle scripts/metrics.sh  # use that binary, no build
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BRIDLE_BIN:-target/debug/bridle}
REQUIREMENTS=scripts/requirements-metrics.txt

# The pinned parser, once per change of the requirements file.
stamp=.venv/.requirements-metrics.txt
if ! [[ -x .venv/bin/python ]] || ! cmp -s "$REQUIREMENTS" "$stamp"; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    cp "$REQUIREMENTS" "$stamp"
fi

if [[ -z "${BRIDLE_BIN:-}" ]]; then
    cargo build --quiet --locked -p bridle
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_key="bk_metrics-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
metrics_token="mt_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

BRIDLE_ADMIN_TOKEN=$admin_key BRIDLE_METRICS_TOKEN=$metrics_token \
    "$BIN" serve --listen "127.0.0.1:$port" --db "sqlite://$work/bridle.db" >"$work/serve.log" 2>&1 &
server_pid=$!

ready=
for _ in $(seq 1 120); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "bridle serve exited early:" >&2
        cat "$work/serve.log" >&2
        exit 1
    fi
    if curl -fs -o /dev/null "$base/readyz"; then
        ready=1
        break
    fi
    sleep 0.25
done
if [[ -z "$ready" ]]; then
    echo "bridle serve did not become ready in time:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi

echo "=== prometheus_client $(.venv/bin/python -c 'from importlib.metadata import version; print(version("prometheus-client"))') parsing $base/metrics"
rc=0
BRIDLE_URL=$base BRIDLE_ADMIN_KEY=$admin_key BRIDLE_METRICS_TOKEN=$metrics_token \
    timeout --kill-after=10 60 .venv/bin/python tests/metrics/scrape.py || rc=$?
if grep -q 'request failed\|panicked' "$work/serve.log"; then
    echo "from the server log:" >&2
    grep 'request failed\|panicked' "$work/serve.log" | head -n 20 >&2
    rc=1
fi
exit "$rc"
